package digest

import "hash/maphash"

// PlantForTest stores genuine's hash in the slot of victim under victim's
// 64-bit hash, as a collision of the two hashes would.
func PlantForTest(m *Memo, victim, genuine string) {
	h := maphash.String(m.seed, victim)
	m.slots[h&m.mask].Store(&memoEntry{h: h, s: genuine, sum: SHA256(genuine)})
}
