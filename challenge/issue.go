package challenge

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stepupgrpc/stepup/challenge/factor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// issue makes a fresh challenge for call.
func (s *Service) issue(ctx context.Context, call *Call, allowed []stepupv1.Factor, now time.Time) (*stepupv1.StepUpChallenge, string, error) {
	req := call.Requirement
	id, err := newID()
	if err != nil {
		return nil, "", fmt.Errorf("challenge: %w", err)
	}
	c := challengeClaims{
		tokenClaims: tokenClaims{
			ID:         id,
			Subject:    call.Subject,
			Thumbprint: call.Thumbprint,
			IssuedAt:   now.Unix(),
			Expires:    now.Add(s.ttl).Unix(),
		},
		Method:  call.Method,
		Factors: make([]string, len(allowed)),
	}
	for i, f := range allowed {
		c.Factors[i] = FactorName(f)
	}
	if req.Reusable() {
		c.MaxAge = int64(min(req.MaxAge, s.maxGrantAge) / time.Second)
		// A token acr satisfies only a reusable requirement (see Check):
		// the challenge names acr values only then, so that it never
		// offers a way the method does not accept.
		c.ACR = req.ACRValues
	}
	var items []*stepupv1.SummaryItem
	if call.Request != nil {
		items = s.display.Summarize(call.Request)
	}
	text := SummaryText(call.Method, items)
	approval := slices.Contains(allowed, stepupv1.Factor_FACTOR_APPROVAL)
	// What the user approves on the second screen is this exact request:
	// an approval always binds the request it summarises.
	if req.BindRequest || (approval && call.Request != nil) {
		if c.Digest, err = call.digest(); err != nil {
			return nil, "", err
		}
	}
	if approval {
		c.SummaryDigest = SummaryDigest(text)
	}
	token := s.keys.sign(ChallengeType, c.encode())
	ch := &stepupv1.StepUpChallenge{
		Challenge:      token,
		Factors:        slices.Clone(allowed),
		ExpiresAt:      timestamppb.New(time.Unix(c.Expires, 0)),
		Method:         call.Method,
		BoundToRequest: c.Digest != "",
		Summary:        items,
		SummaryText:    text,
	}
	if c.MaxAge > 0 {
		ch.MaxAge = durationpb.New(time.Duration(c.MaxAge) * time.Second)
	}
	ch.AcrValues = slices.Clone(c.ACR)
	if err := s.issued(ctx, allowed, &factor.Issued{
		Subject: c.Subject, ID: id, Challenge: token, Method: c.Method,
		Summary: items, SummaryText: text,
		IssuedAt: time.Unix(c.IssuedAt, 0), Expires: time.Unix(c.Expires, 0),
	}); err != nil {
		return nil, "", err
	}
	if approval {
		ch.ApprovalId, ch.MatchingCode = id, MatchingCode(token)
	}
	if p, ok := s.factor(stepupv1.Factor_FACTOR_WEBAUTHN).(FactorPrompter); ok && slices.Contains(allowed, stepupv1.Factor_FACTOR_WEBAUTHN) {
		if ch.WebauthnRequestOptions, err = p.RequestOptions(ctx, call.Subject, token, s.ttl); err != nil {
			return nil, "", err
		}
	}
	return ch, id, nil
}

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return b, nil
}
