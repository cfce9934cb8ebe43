package catalog

// Closest returns the candidate nearest to name by edit distance, when it is
// close enough to be a likely typo (distance 1 or 2), or "" otherwise.
// Candidates whose length differs by more than 2 are skipped without
// computing a distance, so a lookup in a catalog of thousands of scopes
// stays cheap.
func Closest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := len(c) - len(name); d > 2 || d < -2 {
			continue
		}
		if d := editDistance(name, c); d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	return best
}
