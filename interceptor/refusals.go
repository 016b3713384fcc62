package interceptor

import (
	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
)

// wireRefusal is what a client is told for a precise reason: the gRPC code,
// the wire reason (ErrorInfo.reason) and the hint code (hints.go,
// docs/PROTOCOL.md §7.4).
type wireRefusal struct {
	code codes.Code
	wire string
	hint string
}

// unknownWireRefusal is the wireRefusal of a reason no package of this module
// declares (a user's own TokenVerifier, through TokenError): an invalid
// token, hint token_refused. A reason's name never decides its wireRefusal:
// one named DPOP_... or STEPUP_... is refused as any other unknown reason.
var unknownWireRefusal = wireRefusal{codes.Unauthenticated, WireInvalidToken, "token_refused"}

// refusals holds one row for every Reason constant of the module
// (interceptor, dpop, challenge, challenge/factor, approval), keyed by
// value, and no other (TestRefusalsComplete). docs/AUDIT.md and
// docs/PROTOCOL.md §7 document it. The rows of reasons that never refuse
// a call through the Guard (ALLOWED, NO_AUTHENTICATION_REQUIRED, the
// approver page's APPROVER_* and the page-only STEPUP_* reasons) are
// those of an unknown reason or of their family, as before.
var refusals = map[Reason]wireRefusal{
	ReasonAllowed:                                  {codes.Unauthenticated, WireInvalidToken, "token_refused"},
	Reason("APPROVER_BAD_REQUEST"):                 {codes.Unauthenticated, WireInvalidToken, "token_refused"},
	Reason("APPROVER_CROSS_ORIGIN"):                {codes.Unauthenticated, WireInvalidToken, "token_refused"},
	Reason("APPROVER_CSRF_INVALID"):                {codes.Unauthenticated, WireInvalidToken, "token_refused"},
	Reason("APPROVER_NOT_SIGNED_IN"):               {codes.Unauthenticated, WireInvalidToken, "token_refused"},
	ReasonAuthorityNotConfigured:                   {codes.Internal, WireUnavailable, "server_authorities"},
	Reason(dpop.ReasonBadAlgorithm):                {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonBadATH):                      {codes.Unauthenticated, WireInvalidDPoPProof, "proof_ath"},
	Reason(dpop.ReasonBadMethod):                   {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonBadURI):                      {codes.Unauthenticated, WireInvalidDPoPProof, "proof_htu"},
	Reason(dpop.ReasonBadKey):                      {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonBadSignature):                {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonBadType):                     {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonIssuedInFuture):              {codes.Unauthenticated, WireInvalidDPoPProof, "proof_time"},
	Reason(dpop.ReasonIssuedTooOld):                {codes.Unauthenticated, WireInvalidDPoPProof, "proof_time"},
	Reason(dpop.ReasonKeyMismatch):                 {codes.Unauthenticated, WireInvalidDPoPProof, "proof_key"},
	ReasonKeyRevoked:                               {codes.Unauthenticated, WireInvalidToken, "credentials_revoked"},
	Reason(dpop.ReasonMalformed):                   {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonNonceInvalid):                {codes.Unauthenticated, WireUseDPoPNonce, "use_dpop_nonce"},
	Reason(dpop.ReasonNonceRequired):               {codes.Unauthenticated, WireUseDPoPNonce, "use_dpop_nonce"},
	Reason(dpop.ReasonPrivateKey):                  {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	ReasonProofMissing:                             {codes.Unauthenticated, WireInvalidDPoPProof, "proof_missing"},
	Reason(dpop.ReasonReplayed):                    {codes.Unauthenticated, WireInvalidDPoPProof, "proof_replayed"},
	Reason(dpop.ReasonReplayWindow):                {codes.Unauthenticated, WireInvalidDPoPProof, "proof_replayed"},
	ReasonDPoPRequired:                             {codes.Unauthenticated, WireInvalidToken, "dpop_required"},
	Reason(dpop.ReasonStoreUnavailable):            {codes.Unavailable, WireUnavailable, "unavailable"},
	Reason(dpop.ReasonTooLarge):                    {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	Reason(dpop.ReasonWeakKey):                     {codes.Unauthenticated, WireInvalidDPoPProof, "proof_invalid"},
	ReasonInsufficientScope:                        {codes.PermissionDenied, WireInsufficientScope, "scope"},
	ReasonInternal:                                 {codes.Internal, WireUnavailable, "server_error"},
	ReasonMetadataDuplicate:                        {codes.Unauthenticated, WireInvalidRequest, "metadata"},
	ReasonMetadataTooLarge:                         {codes.Unauthenticated, WireInvalidRequest, "metadata"},
	ReasonNoAuthentication:                         {codes.Unauthenticated, WireInvalidToken, "token_refused"},
	ReasonPolicyMissing:                            {codes.PermissionDenied, WirePolicyMissing, "policy_missing"},
	Reason(challenge.ReasonRequestInvalid):         {codes.InvalidArgument, WireInvalidRequest, "request_refused"},
	Reason(challenge.ReasonRequestUnknownField):    {codes.InvalidArgument, WireInvalidRequest, "request_refused"},
	Reason(challenge.ReasonAnswerBadSignature):     {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonAnswerMalformed):        {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonAnswerWrongKey):         {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonApprovalsLimit):         {codes.PermissionDenied, WireStepUpLocked, "stepup_locked"},
	Reason(challenge.ReasonApprovalDecided):        {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonApprovalDenied):         {codes.PermissionDenied, WireApprovalDenied, "approval_denied"},
	Reason(challenge.ReasonApprovalExpired):        {codes.Unauthenticated, WireApprovalExpired, "approval_expired"},
	Reason(challenge.ReasonApprovalPending):        {codes.Unavailable, WireApprovalPending, "approval_pending"},
	Reason(challenge.ReasonApprovalUnknown):        {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonApproverSessionEnded):   {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonApproverSessionInvalid): {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonApproverSessionRevoked): {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	ReasonStepUpLocked:                             {codes.PermissionDenied, WireStepUpLocked, "stepup_locked"},
	Reason(challenge.ReasonChallengeBadSignature):  {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeExpired):       {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeMalformed):     {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeReused):        {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeWrongKey):      {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeWrongMethod):   {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeWrongRequest):  {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonChallengeWrongSubject):  {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonDeviceKeyUnknown):       {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonDeviceSignatureInvalid): {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonFactorNotAllowed):       {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantBadSignature):      {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantExpired):           {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantFactorNotAllowed):  {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantMalformed):         {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantRevoked):           {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantTooOld):            {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantWrongKey):          {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonGrantWrongSubject):      {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonReplayWindow):           {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	ReasonStepUpRequired:                           {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_required"},
	Reason(challenge.ReasonSignInInvalid):          {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	ReasonStepUpUnavailable:                        {codes.Unavailable, WireUnavailable, "unavailable"},
	Reason(challenge.ReasonTOTPInvalid):            {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonTOTPReused):             {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonWebAuthnCounter):        {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonWebAuthnInvalid):        {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	Reason(challenge.ReasonWebAuthnNoUV):           {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_refused"},
	ReasonStreamRevoked:                            {codes.Unauthenticated, WireInvalidToken, "stream_ended"},
	ReasonStreamStepUpExpired:                      {codes.Unauthenticated, WireInsufficientUserAuthentication, "stepup_expired"},
	ReasonStreamTokenExpired:                       {codes.Unauthenticated, WireInvalidToken, "stream_ended"},
	ReasonTokenBadAlgorithm:                        {codes.Unauthenticated, WireInvalidToken, "token_header"},
	ReasonTokenBadHeader:                           {codes.Unauthenticated, WireInvalidToken, "token_header"},
	ReasonTokenScheme:                              {codes.Unauthenticated, WireInvalidToken, "token_scheme"},
	ReasonTokenBadSignature:                        {codes.Unauthenticated, WireInvalidToken, "token_signature"},
	ReasonTokenBadType:                             {codes.Unauthenticated, WireInvalidToken, "token_header"},
	ReasonBoundTokenAsBearer:                       {codes.Unauthenticated, WireInvalidToken, "dpop_required"},
	ReasonTokenExpired:                             {codes.Unauthenticated, WireInvalidToken, "token_expired"},
	ReasonTokenInvalidClaims:                       {codes.Unauthenticated, WireInvalidToken, "token_claims"},
	ReasonTokenLifetimeTooLong:                     {codes.Unauthenticated, WireInvalidToken, "token_claims"},
	ReasonTokenMalformed:                           {codes.Unauthenticated, WireInvalidToken, "token_not_jwt"},
	ReasonTokenMissing:                             {codes.Unauthenticated, WireInvalidToken, "token_missing"},
	ReasonTokenNotBound:                            {codes.Unauthenticated, WireInvalidToken, "token_not_bound"},
	ReasonTokenNotYetValid:                         {codes.Unauthenticated, WireInvalidToken, "token_expired"},
	ReasonTokenRevoked:                             {codes.Unauthenticated, WireInvalidToken, "credentials_revoked"},
	ReasonTokenTooOld:                              {codes.Unauthenticated, WireInvalidToken, "token_expired"},
	ReasonTokenVerifierFailed:                      {codes.Unavailable, WireUnavailable, "unavailable"},
	ReasonTokenWrongAudience:                       {codes.Unauthenticated, WireInvalidToken, "token_audience"},
	ReasonTokenWrongIssuer:                         {codes.Unauthenticated, WireInvalidToken, "token_issuer"},
}

// wireRefusalOf returns the wireRefusal of a precise reason.
func wireRefusalOf(r Reason) wireRefusal {
	if f, ok := refusals[r]; ok {
		return f
	}
	return unknownWireRefusal
}
