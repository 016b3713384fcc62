package challenge

import "context"

// Names kept for one release; CHANGELOG.md says what replaces them.

// Error is the error Check returns when the shared store fails.
//
// Deprecated: use StoreError (the same type); dpop has an error of its own.
// Error goes in the next release.
type Error = StoreError

// ApproverSession returns the subject of a valid approver page session
// token, and false when it is forged, malformed, expired, signed out or
// revoked, or when the store cannot say (fail closed).
//
// Deprecated: use CheckApproverSession, which takes the request's context
// and tells a store failure and the reason apart. ApproverSession goes in
// the next release.
func (s *Service) ApproverSession(session string) (subject string, ok bool) {
	if s.approval == nil {
		return "", false
	}
	sub, reason, err := s.CheckApproverSession(context.Background(), session)
	return sub, err == nil && reason == ""
}
