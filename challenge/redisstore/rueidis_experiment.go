package redisstore

// Temporary: an experiment for issue #36, measuring inserts over rueidis
// against the go-redis batcher. Not for use.

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// The transports of the experiment.
const (
	RueidisPerInsert = 1 // one EVALSHA per insert through rueidis's auto-pipelining, no batcher
	RueidisBatched   = 2 // the batcher, each batch's script call sent through rueidis
)

// NewRueidisExperiment is New, then inserts sent through ru (mode above).
func NewRueidisExperiment(client redis.UniversalClient, ru rueidis.Client, mode int, opts ...Option) (*Store, error) {
	s, err := New(client, opts...)
	if err != nil {
		return nil, err
	}
	s.ru, s.ruMode = ru, mode
	return s, nil
}

var ruInsertScript = rueidis.NewLuaScript(insertScriptSource)

func (s *Store) ruInsert(ctx context.Context, key string, slot int, ep *epoch, exp int64) (any, error) {
	res := ruInsertScript.Exec(ctx, s.ru, []string{s.epochs.keys[slot], key}, []string{ep.record, strconv.FormatInt(exp, 10)})
	v, err := ruValue(res)
	if err != nil {
		return nil, err
	}
	if a, ok := v.([]any); ok {
		return a[0], nil
	}
	return v, nil
}

func (s *Store) ruGroup(ctx context.Context, g *insertGroup) {
	keys := make([]string, 1+len(g.reqs))
	args := make([]string, 1+len(g.reqs))
	keys[0], args[0] = s.epochs.keys[g.reqs[0].slot], g.reqs[0].ep.record
	for j, r := range g.reqs {
		keys[1+j], args[1+j] = r.key, strconv.FormatInt(r.exp, 10)
	}
	v, err := ruValue(ruInsertScript.Exec(ctx, s.ru, keys, args))
	g.cmd = redis.NewCmd(ctx)
	if err != nil {
		g.cmd.SetErr(err)
	} else {
		g.cmd.SetVal(v)
	}
}

func ruValue(res rueidis.RedisResult) (any, error) {
	msg, err := res.ToMessage()
	if err != nil {
		return nil, err
	}
	if msg.IsArray() {
		arr, _ := msg.ToArray()
		out := make([]any, len(arr))
		for i, m := range arr {
			n, err := m.AsInt64()
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return msg.ToString()
}
