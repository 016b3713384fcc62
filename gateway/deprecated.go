package gateway

import (
	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Names kept for one release; CHANGELOG.md says what replaces them.

// ReasonBadRequest was the reason of a step-up request that does not
// decode as the method's input type. The Guard now refuses it, after the
// token, the proof and the scopes, as REQUEST_INVALID.
//
// Deprecated: use challenge.ReasonRequestInvalid; this name goes in the
// next release (CHANGELOG.md).
const ReasonBadRequest = interceptor.Reason(challenge.ReasonRequestInvalid)
