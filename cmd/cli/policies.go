package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/stepupgrpc/stepup/gateway"
)

// WritePolicies prints a policy table, as stepup policies and
// stepup-gateway --check both do: aligned columns, or JSON (an array of
// gateway.PolicyRow). Every cell comes from a descriptor set or a
// configuration and goes through Printable.
func WritePolicies(w io.Writer, t gateway.PolicyTable, asJSON bool) error {
	if asJSON {
		out, err := json.MarshalIndent(t, "", "  ")
		if err != nil {
			return err
		}
		// encoding/json escapes the C0 controls only; DEL, the C1
		// controls and format characters of a descriptor's strings too.
		_, err = fmt.Fprintln(PrintableWriter(w), string(out))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tKIND\tAUTHENTICATION\tSCOPES\tSTEP-UP\tMAX_AGE\tBOUND\tDISPLAY\tPROBLEM")
	for _, r := range t {
		step := "-"
		if r.StepUp {
			step = strings.Join(r.Factors, ",")
			if step == "" {
				step = "any factor"
			}
			if len(r.ACRValues) > 0 {
				step += " or acr " + strings.Join(r.ACRValues, ",")
			}
		}
		if r.Shadow {
			step += " (shadow)"
		}
		bound := "-"
		if r.StepUp {
			bound = "no"
			if r.BindRequest {
				bound = "yes"
			}
		}
		display := strings.Join(r.Display, ",")
		if r.StepUp && display == "" {
			display = "nothing"
		}
		// A tab in a scope would also shift the columns: Printable
		// escapes it.
		cells := []string{r.Method, r.Kind, r.Authentication, dash(strings.Join(r.Scopes, " ")), step,
			dash(r.MaxAge), bound, dash(display), dash(r.Problem)}
		for i, c := range cells {
			cells[i] = Printable(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
