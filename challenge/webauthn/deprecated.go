package webauthn

import (
	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
)

// Names kept for one release; CHANGELOG.md says what replaces them.

// WithApproval is the Option that enables the approval factor with opts
// whose Passkeys are f.Approver(origin, creds), as NewApproval builds it:
// a new factor for each Service the Option is given to. NewService
// reports its error.
//
// Deprecated: build the factor with NewApproval, wire it with
// challenge.WithFactor and give it to the approver page
// (approval.Config.Approvals), which needs it. WithApproval goes in the
// next release.
func (f *Factor) WithApproval(origin string, creds Store, opts approval.Options) challenge.Option {
	p, err := f.Approver(origin, creds)
	if err != nil {
		return challenge.OptionError(err)
	}
	opts.Passkeys = p
	return challenge.WithApproval(opts)
}
