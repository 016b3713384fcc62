package dpop

import (
	"context"
	"crypto/sha256"
)

// VerifyWithoutCurve runs Verify with everything but the public-key
// operation itself: all checks, the SHA-256 of the signing input and the
// replay insert. Benchmarks use it to measure this package's overhead
// precisely, independently of the noise in the curve arithmetic.
func VerifyWithoutCurve(v *Verifier, ctx context.Context, req Request) (*Proof, error) {
	scratch := getScratch()
	defer putScratch(scratch)
	var p pending
	if err := v.precheck(&req, &p, *scratch); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(p.j.signingInput)
	if digest[0] == 0 && digest[1] == 0 && digest[2] == 0 && digest[3] == 0 && len(p.j.sig) == 0 {
		return nil, newError(ReasonBadSignature, "unreachable")
	}
	return v.record(ctx, &p)
}
