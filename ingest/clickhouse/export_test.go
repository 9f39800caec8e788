package clickhouse

// RollupReads returns how many Selects read the 1-minute and the 1-hour rollup.
func RollupReads(s *Store) (minute, hour uint64) {
	return s.rollupReads[0].Load(), s.rollupReads[1].Load()
}

// AnchoredRegexp is anchoredRegexp, for tests against a real server.
func AnchoredRegexp(re string) string { return anchoredRegexp(re) }
