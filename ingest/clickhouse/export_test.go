package clickhouse

// RollupReads returns how many Selects read the 1-minute and the 1-hour rollup.
func RollupReads(s *Store) (minute, hour uint64) {
	return s.rollupReads[0].Load(), s.rollupReads[1].Load()
}
