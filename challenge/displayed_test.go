package challenge_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	requestv1 "github.com/stepupgrpc/stepup/challenge/internal/testproto/request/v1"
)

// TestDisplayedNamesWhatSummariesShow: Displayed names nested fields as
// summary items do ("payee.name", repeated messages as "parties[].name"),
// cuts a recursive type at the summary's depth, and every item of a real
// summary of a filled request is among the names it lists.
func TestDisplayedNamesWhatSummariesShow(t *testing.T) {
	nest := &requestv1.NestRequest{Payee: &requestv1.Party{Name: "Bob", Iban: "DE02"}}
	node := &requestv1.Node{Label: "n0"}
	nest.Root = node
	for i := 1; i < 12; i++ {
		node.Next = &requestv1.Node{Label: "n"}
		node = node.Next
	}
	coll := &requestv1.CollectionsRequest{Nums: []int32{1}, Parties: []*requestv1.Party{{Name: "a"}, {Name: "b"}}, Labels: map[string]string{"k": "v"}}
	index := regexp.MustCompile(`\[\d+\]`)
	for _, msg := range []proto.Message{nest, coll} {
		names := challenge.DisplayFields{}.Displayed(msg.ProtoReflect().Descriptor())
		for _, item := range challenge.Summarize(msg) {
			if n := index.ReplaceAllString(item.GetField(), "[]"); !slices.Contains(names, n) {
				t.Errorf("%T: the summary shows %s, Displayed lists %q", msg, item.GetField(), names)
			}
		}
	}
	names := challenge.DisplayFields{}.Displayed(nest.ProtoReflect().Descriptor())
	for _, want := range []string{"root.label", "root.next.label", "payee.name", "payee.iban"} {
		if !slices.Contains(names, want) {
			t.Errorf("NestRequest: %q lacks %s", names, want)
		}
	}
	if slices.Contains(names, "ignored") {
		t.Errorf("NestRequest: %q lists a display option on a message field, which summaries ignore", names)
	}
	deepest := 0
	for _, n := range names {
		deepest = max(deepest, strings.Count(n, "next"))
	}
	if deepest != 7 {
		t.Errorf("the recursion goes %d levels deep, want the summary's 8 (root + 7 next)", deepest)
	}
	c := challenge.DisplayFields{}.Displayed(coll.ProtoReflect().Descriptor())
	if !slices.Contains(c, "parties[].name") || !slices.Contains(c, "labels") {
		t.Errorf("CollectionsRequest: %q", c)
	}
}
