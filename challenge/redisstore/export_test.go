package redisstore

// EpochKeys returns the epoch record of every slot of a Redis Cluster store
// with prefix, in slot order.
func EpochKeys(prefix string) []string { return newEpochs(prefix, true).keys }

// EpochKeyFor returns a function that names the epoch record vouching for a
// key (without the prefix) in a Redis Cluster store with prefix.
func EpochKeyFor(prefix string) func(key string) string {
	e := newEpochs(prefix, true)
	return func(key string) string { return e.keys[e.slot(prefix+key)] }
}

// Batch reports whether a batch of inserts is in flight and how many
// inserts wait for the next one.
func Batch(s *Store) (inFlight bool, queued int) { return s.batch.q.State() }
