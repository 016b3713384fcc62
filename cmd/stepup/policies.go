package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/interceptor"
)

// policyRow is one method of the table.
type policyRow struct {
	Method         string   `json:"method"`
	Kind           string   `json:"kind"`
	Source         string   `json:"source"`
	Authentication string   `json:"authentication"`
	Scopes         []string `json:"scopes,omitempty"`
	StepUp         bool     `json:"step_up"`
	Factors        []string `json:"factors,omitempty"`
	ACRValues      []string `json:"acr_values,omitempty"`
	MaxAge         string   `json:"max_age,omitempty"`
	BindRequest    bool     `json:"bind_request,omitempty"`
	Shadow         bool     `json:"shadow,omitempty"`
	Problem        string   `json:"problem,omitempty"`
}

func runPolicies(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup policies", "--descriptors FILE[,FILE...] [--json]",
		"Prints the effective policy of every method of a descriptor set (buf build\n"+
			"-o api.binpb) from its stepup annotations, merged by the rules of\n"+
			"docs/POLICY.md: authentication, scopes, step-up factors, max_age, request\n"+
			"binding. A method without a policy, or whose annotations contradict each\n"+
			"other, is a problem: the exit code is then 1.\n")
	paths := fs.String("descriptors", "", "comma-separated descriptor set `files` (required)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := cli.Parse(fs, args, "descriptors"); err != nil {
		return err
	}
	files, err := gateway.LoadDescriptorSets(strings.Split(*paths, ",")...)
	if err != nil {
		return err
	}
	var rows []policyRow
	problems := 0
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				row := rowOf(sd.Methods().Get(j))
				if row.Problem != "" {
					problems++
				}
				rows = append(rows, row)
			}
		}
		return true
	})
	sort.Slice(rows, func(i, j int) bool { return rows[i].Method < rows[j].Method })
	if *asJSON {
		out, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		// encoding/json escapes the C0 controls only; DEL, the C1
		// controls and format characters of a descriptor's strings too.
		fmt.Fprintln(cli.PrintableWriter(e.stdout), string(out))
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "METHOD\tKIND\tAUTHENTICATION\tSCOPES\tSTEP-UP\tMAX_AGE\tBOUND\tPROBLEM")
		for _, r := range rows {
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
			// The cells come from the descriptor set: each through
			// cli.Printable (a tab in a scope would also shift the columns).
			cells := []string{r.Method, r.Kind, r.Authentication, dash(strings.Join(r.Scopes, " ")), step,
				dash(r.MaxAge), strconv.FormatBool(r.BindRequest), r.Problem}
			for i, c := range cells {
				cells[i] = cli.Printable(c)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if problems > 0 {
		fmt.Fprintf(e.stderr, "%d method(s) with a problem\n", problems)
		return cli.ErrReported
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rowOf resolves one method's policy as a Guard would.
func rowOf(md protoreflect.MethodDescriptor) policyRow {
	row := policyRow{Method: "/" + string(md.Parent().FullName()) + "/" + string(md.Name()), Kind: kindOf(md)}
	p, err := interceptor.ResolvePolicy(md)
	if err != nil {
		row.Problem = err.Error()
		return row
	}
	row.Source = p.Source.String()
	switch {
	case !p.Defined():
		row.Authentication = "none set"
		row.Problem = "no policy: refused under WithRequirePolicy and by stepup-gateway (POLICY_MISSING)"
		return row
	case p.NoAuthentication:
		row.Authentication = "none (insecure_no_authentication)"
		return row
	case p.AllowBearer:
		row.Authentication = "bearer or DPoP token"
	default:
		row.Authentication = "DPoP-bound token"
	}
	if p.MaxTokenAge > 0 {
		row.Authentication += ", at most " + p.MaxTokenAge.String() + " old"
	}
	row.Scopes, row.Shadow = p.Scopes, p.Shadow
	if s := p.StepUp; s != nil {
		row.StepUp, row.ACRValues, row.BindRequest = true, s.ACRValues, s.BindRequest
		for _, f := range s.Factors {
			row.Factors = append(row.Factors, challenge.FactorName(f))
		}
		if s.MaxAge > 0 {
			row.MaxAge = s.MaxAge.Round(time.Second).String()
		} else {
			row.MaxAge = "every call"
		}
	}
	return row
}

func kindOf(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidi"
	case md.IsStreamingClient():
		return "client-stream"
	case md.IsStreamingServer():
		return "server-stream"
	}
	return "unary"
}
