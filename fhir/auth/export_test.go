package auth

// Verifications is how many external tokens x verified in full (not from
// its cache).
func Verifications(x *External) int64 { return x.verified.Load() }
