package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/nanotime"
)

// Data loss detection.
//
// Redis can lose what the store wrote: a restart without persistence, a
// FLUSHALL, a cluster shard that comes back empty. A single-use key lost
// that way would let its proof, challenge answer or TOTP code be accepted
// again. The store therefore keeps, next to the single-use keys, an epoch
// record: a value written once (a random id and a floor), read in the same
// script as every single-use insert. Each Store remembers the record it
// last saw; when the script finds none, the data of that record's slot was
// lost, and the store writes a new record whose floor is the moment it
// noticed, plus the expiry margin and the future window (WithFutureWindow):
// no single-use key issued at or before the floor is accepted again
// (dpop.ErrEvicted, as the in-process store does when it evicts a live
// entry). The floor lives in the record itself, so every replica that
// finds the new record in place of the one it knew, and every replica
// started later, applies it (epochChanged).
//
// On Redis Cluster each hash slot has a record of its own, a key whose hash
// tag maps to that slot (<prefix>epoch:{<tag>}), so the record and the keys
// it vouches for always live on the same shard, move together when a slot
// migrates, and are lost together: a shard that loses its data raises the
// floor of its own slots only. Elsewhere there is one record,
// <prefix>epoch.
//
// The record is "<id>:<floor>", id 32 hex digits, floor in Unix milliseconds
// (0: none).

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// epoch is a record as a Store saw it.
type epoch struct {
	record string // as stored
	id     string
	floor  int64 // Unix ns: keys issued at or before it are refused; math.MinInt64 for none
}

// epochs is a Store's view of the epoch records: one per slot on Redis
// Cluster, one in all otherwise.
type epochs struct {
	keys  []string // the record's key, per slot
	state []atomic.Pointer[epoch]

	mu     sync.Mutex   // serialises the handling of changed records
	floor  atomic.Int64 // latest floor of any slot, Unix ns; math.MinInt64 for none
	losses atomic.Uint64
}

func newEpochs(prefix string, cluster bool) *epochs {
	e := &epochs{}
	e.floor.Store(math.MinInt64)
	if !cluster {
		e.keys = []string{prefix + "epoch"}
	} else {
		tags := slotTags()
		e.keys = make([]string, clusterSlots)
		for i, t := range tags {
			e.keys[i] = prefix + "epoch:{" + t + "}"
		}
	}
	e.state = make([]atomic.Pointer[epoch], len(e.keys))
	return e
}

// slot returns the index of the record that vouches for key (a full key,
// prefix included).
func (e *epochs) slot(key string) int {
	if len(e.keys) == 1 {
		return 0
	}
	return int(hashSlot(key))
}

// set records that the store now vouches from ep for slot i.
func (e *epochs) set(i int, ep *epoch) {
	e.state[i].Store(ep)
	for {
		f := e.floor.Load()
		if ep.floor <= f || e.floor.CompareAndSwap(f, ep.floor) {
			return
		}
	}
}

// parseEpoch reads a stored record; "" (no record) is not one.
func parseEpoch(s string) (*epoch, bool) {
	id, f, ok := strings.Cut(s, ":")
	if !ok || len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, false
	}
	ms, err := strconv.ParseInt(f, 10, 64)
	if err != nil || ms < 0 || strconv.FormatInt(ms, 10) != f {
		return nil, false
	}
	ep := &epoch{record: s, id: id, floor: math.MinInt64}
	if ms > 0 {
		ep.floor = nanotime.Unix(time.UnixMilli(ms))
	}
	return ep, true
}

// formatEpoch is the record of id with a floor of floorMS (Unix ms, 0 for
// none).
func formatEpoch(id string, floorMS int64) string {
	return id + ":" + strconv.FormatInt(floorMS, 10)
}

func newEpochID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// lossFloorMS is the floor a loss noticed now raises, in Unix ms rounded up:
// every key recorded before the loss was issued at most the future window
// after it was recorded, by a clock at most the expiry margin ahead of ours.
func (s *Store) lossFloorMS() int64 {
	return s.expiry(s.now().Add(s.future))
}

// ErrDataLoss is wrapped, with dpop.ErrEvicted, by the error of an Insert
// refused because the key was issued at or before the floor the store
// raised when it found that Redis had lost data (see Store.Floor).
var ErrDataLoss = errors.New("redisstore: issued before Redis lost data")

// evicted is the refusal of a key issued at or before floor (Unix ns).
func evicted(issued time.Time, floor int64) error {
	return fmt.Errorf("%w (%w): issued %s, at or before the floor %s", dpop.ErrEvicted, ErrDataLoss,
		issued.UTC().Format(time.RFC3339Nano), time.Unix(0, floor).UTC().Format(time.RFC3339Nano))
}

// casEpochScript: KEYS[1] an epoch record, ARGV[1] the record expected (""
// for none), ARGV[2] the new one. It replaces the record only if it is still
// the one expected, and returns the record now stored.
var casEpochScript = redis.NewScript(`
local e = redis.call('GET', KEYS[1]) or ''
if e == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return e
`)

// epochChanged handles an insert whose script found the record of slot i
// to be seen ("" for none) where the store expected known:
//
//   - known's record with a higher floor: another replica raised it (see
//     below); the store adopts it.
//   - another record with a floor: the slot's data was lost, and whoever
//     made or raised that record noticed the loss then, and set a floor past
//     everything recorded before it; the store adopts it too (raising it to
//     its own, later, time would refuse fresh keys once more for nothing).
//   - no record, or another one without a floor (a New that took the
//     emptied store for a new one): the store sets the loss floor of now,
//     keeping the record's id, and adopts the result.
//
// The last two count as a loss (Losses).
func (s *Store) epochChanged(ctx context.Context, i int, known *epoch, seen string) error {
	e := s.epochs
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.state[i].Load(); cur != known {
		return nil // handled meanwhile: the caller tries again with the new record
	}
	lost := false
	for range 4 {
		rec, ok := parseEpoch(seen)
		if seen != "" && !ok {
			return fmt.Errorf("redisstore: the epoch record %s holds %q, not an epoch record: "+
				"something else writes under the store's prefix", e.keys[i], seen)
		}
		if ok && rec.id == known.id {
			if rec.floor < known.floor {
				return fmt.Errorf("redisstore: the floor of the epoch record %s went down; "+
					"something else writes under the store's prefix", e.keys[i])
			}
			e.set(i, rec)
			return nil
		}
		if !lost {
			lost = true
			e.losses.Add(1)
		}
		if ok && rec.floor != math.MinInt64 {
			e.set(i, rec)
			return nil
		}
		id := ""
		if ok {
			id = rec.id
		} else {
			var err error
			if id, err = newEpochID(); err != nil {
				return fmt.Errorf("redisstore: %w", err)
			}
		}
		next := formatEpoch(id, s.lossFloorMS())
		got, err := casEpochScript.Run(ctx, s.client, []string{e.keys[i]}, seen, next).Text()
		if err != nil {
			return fmt.Errorf("redisstore: epoch record: %w", err)
		}
		if got == next {
			rec, _ := parseEpoch(next)
			e.set(i, rec)
			return nil
		}
		seen = got // changed meanwhile: look again
	}
	return fmt.Errorf("redisstore: the epoch record %s keeps changing", e.keys[i])
}

// initEpochs reads every epoch record of the prefix, creating those that do
// not exist, in one pipeline of SET NX GET (a write, so it reaches the
// primary; on Redis Cluster one command per slot). A record is created
// without a floor when none existed (a prefix never used, as far as Redis
// can tell); when others existed (a cluster shard that lost its data), the
// ones created are then raised to the loss floor of now.
func (s *Store) initEpochs(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	e := s.epochs
	id, err := newEpochID()
	if err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	fresh := formatEpoch(id, 0)
	cmds := make([]*redis.Cmd, len(e.keys))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range e.keys {
			cmds[i] = p.Do(ctx, "set", k, fresh, "nx", "get")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: epoch records: %w", err)
	}
	recs := make([]string, len(e.keys))
	var created []int
	for i, c := range cmds {
		switch v, err := c.Text(); {
		case errors.Is(err, redis.Nil):
			recs[i] = fresh
			created = append(created, i)
		case err != nil:
			return fmt.Errorf("redisstore: epoch records: %w", err)
		default:
			recs[i] = v
		}
	}
	if len(created) > 0 && len(created) < len(recs) {
		// Some records existed: the slots without one lost their data.
		e.losses.Add(1)
		lost := formatEpoch(id, s.lossFloorMS())
		cas := make([]*redis.Cmd, len(created))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range created {
				cas[j] = casEpochScript.Eval(ctx, p, []string{e.keys[i]}, fresh, lost)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("redisstore: epoch records: %w", err)
		}
		for j, i := range created {
			if recs[i], err = cas[j].Text(); err != nil {
				return fmt.Errorf("redisstore: epoch records: %w", err)
			}
		}
	}
	parsed := map[string]*epoch{} // the slots of a cluster share a few records
	for i, r := range recs {
		ep, ok := parsed[r]
		if !ok {
			if ep, ok = parseEpoch(r); !ok {
				return fmt.Errorf("redisstore: the epoch record %s holds %q, not an epoch record: "+
					"something else writes under the store's prefix", e.keys[i], r)
			}
			parsed[r] = ep
		}
		e.set(i, ep)
	}
	return nil
}

// isCluster reports whether client talks to a Redis Cluster: a
// *redis.ClusterClient does, a *redis.Client does not, and for any other
// client (a wrapper) INFO cluster says (a client that cannot ask is taken
// for a single Redis; on a cluster, New's self-test then fails with
// CROSSSLOT).
func isCluster(ctx context.Context, client redis.UniversalClient) bool {
	switch client.(type) {
	case *redis.ClusterClient:
		return true
	case *redis.Client:
		return false
	}
	info, err := client.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}

// Floor returns the latest floor the store has raised or adopted because
// Redis lost data, in any slot: single-use keys issued at or before it (in
// that slot) are refused with dpop.ErrEvicted. It is the zero Time while
// the store has seen no loss. Useful as a metric, with Losses.
func (s *Store) Floor() time.Time {
	f := s.epochs.floor.Load()
	if f == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, f)
}

// Losses returns how many times this Store found that Redis had lost data:
// an epoch record that vanished or was replaced (each raised or adopted a
// floor; on Redis Cluster each slot's record counts, so a shard that lost
// its data counts once for every slot of it that an insert touched since),
// and, at New, a cluster whose records exist for some slots only (once). It
// should stay 0; alert when it grows.
func (s *Store) Losses() uint64 { return s.epochs.losses.Load() }

// slotTags returns, for every Redis Cluster hash slot, a short string that
// hashes to it. Computed once.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, clusterSlots)
	for n, found := uint64(0), 0; found < clusterSlots; n++ {
		t := strconv.FormatUint(n, 36)
		if i := crc16(t) % clusterSlots; tags[i] == "" {
			tags[i] = t
			found++
		}
	}
	return tags
})

// hashSlot is the Redis Cluster hash slot of key: CRC16 of the key, or of
// its hash tag (what lies between the first '{' and the first '}' after
// it, when not empty), modulo 16384.
func hashSlot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return crc16(key) % clusterSlots
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the hash of
// Redis Cluster.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()
