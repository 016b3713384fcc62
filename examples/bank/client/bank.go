package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stepupgrpc/stepup/cmd/cli"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
)

const connHelp = `Every call carries "authorization: DPoP <token>" and a fresh DPoP proof
signed by --key. A step-up challenge is answered with a TOTP code read from
stdin (a terminal or a pipe), or with --device-key.
`

// rpcCommand parses the shared flags plus the command's own, dials, and runs
// call with a deadline of --timeout.
func rpcCommand(ctx context.Context, e *env, args []string, name, synopsis, description string,
	own func(fs flagSet), call func(ctx context.Context, s *session) error) error {
	fs := cli.NewFlagSet(e.stderr, "client "+name, synopsis, description+"\n"+connHelp)
	var c connFlags
	c.register(fs)
	if own != nil {
		own(fs)
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	s, err := c.dial(e)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return describe(call(ctx, s))
}

// flagSet is the part of *flag.FlagSet that commands use for their own flags.
type flagSet interface {
	String(name, value, usage string) *string
}

// accountFlag registers --account, the account a command reads.
func accountFlag(fs flagSet) *string {
	return fs.String("account", "", "account `id` (default \"<token subject>-checking\")")
}

func runBalance(ctx context.Context, e *env, args []string) error {
	var account *string
	return rpcCommand(ctx, e, args, "balance", "[flags]", "Shows an account's balance (no step-up).\n",
		func(fs flagSet) { account = accountFlag(fs) },
		func(ctx context.Context, s *session) error {
			id, err := s.account(*account)
			if err != nil {
				return err
			}
			res, err := s.bank.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: id})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: %s\n", res.GetAccountId(), money(res.GetBalance()))
			return nil
		})
}

func runTransfer(ctx context.Context, e *env, args []string) error {
	var account, to, amount, currency, reference *string
	return rpcCommand(ctx, e, args, "transfer", "--to IBAN --amount 120.00 [flags]",
		"Moves money to an IBAN. Every transfer needs its own step-up, bound to\n"+
			"this exact request: the prompt shows the amount and the destination.\n",
		func(fs flagSet) {
			account = fs.String("account", "", "debited account `id` (default \"<token subject>-checking\")")
			to = fs.String("to", "", "destination `IBAN` (required)")
			amount = fs.String("amount", "", "`amount` in major units with at most two decimals, such as 120.00 (required)")
			currency = fs.String("currency", "EUR", "ISO 4217 `code`")
			reference = fs.String("reference", "", "`text` for the payee's statement")
		},
		func(ctx context.Context, s *session) error {
			if *to == "" {
				return fmt.Errorf("%w: --to is required", cli.ErrUsage)
			}
			minor, err := parseAmount(*amount)
			if err != nil {
				return fmt.Errorf("%w: --amount: %w", cli.ErrUsage, err)
			}
			id, err := s.account(*account)
			if err != nil {
				return err
			}
			res, err := s.bank.Transfer(ctx, &bankv1.TransferRequest{
				FromAccountId: id, AmountMinor: minor, Currency: *currency, ToIban: *to, Reference: *reference,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "transfer %s: %s to %s, balance after %s\n", res.GetTransferId(),
				money(&bankv1.Money{AmountMinor: minor, Currency: *currency}), *to, money(res.GetBalanceAfter()))
			return nil
		})
}

func runAddPayee(ctx context.Context, e *env, args []string) error {
	var name, iban *string
	return rpcCommand(ctx, e, args, "add-payee", "--name NAME --iban IBAN [flags]",
		"Registers a payee. Needs a step-up; the server returns a grant that this\n"+
			"process would reuse for 5 minutes.\n",
		func(fs flagSet) {
			name = fs.String("name", "", "payee `name` (required)")
			iban = fs.String("iban", "", "payee `IBAN` (required)")
		},
		func(ctx context.Context, s *session) error {
			if *name == "" || *iban == "" {
				return fmt.Errorf("%w: --name and --iban are required", cli.ErrUsage)
			}
			res, err := s.bank.AddPayee(ctx, &bankv1.AddPayeeRequest{Name: *name, Iban: *iban})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "payee %s: %s %s\n", res.GetPayeeId(), *name, *iban)
			return nil
		})
}

func runWatch(ctx context.Context, e *env, args []string) error {
	var account *string
	return rpcCommand(ctx, e, args, "watch", "[flags]",
		"Lists an account's transactions, one a line: id, booking time, amount,\n"+
			"counterparty, reference (no step-up).\n",
		func(fs flagSet) { account = accountFlag(fs) },
		func(ctx context.Context, s *session) error {
			id, err := s.account(*account)
			if err != nil {
				return err
			}
			stream, err := s.bank.WatchTransactions(ctx, &bankv1.WatchTransactionsRequest{AccountId: id})
			if err != nil {
				return err
			}
			return printTransactions(e.stdout, stream)
		})
}

func runExport(ctx context.Context, e *env, args []string) error {
	var account, from, to *string
	return rpcCommand(ctx, e, args, "export", "[flags]",
		"Exports an account's statement lines, one a line as in watch. Needs a\n"+
			"step-up (reusable for 5 minutes).\n",
		func(fs flagSet) {
			account = accountFlag(fs)
			from = fs.String("from", "", "first `day` included, YYYY-MM-DD")
			to = fs.String("to", "", "`day` after the last included, YYYY-MM-DD")
		},
		func(ctx context.Context, s *session) error {
			req := &bankv1.ExportStatementsRequest{}
			var err error
			if req.AccountId, err = s.account(*account); err != nil {
				return err
			}
			if req.From, err = parseDay(*from); err != nil {
				return fmt.Errorf("%w: --from: %w", cli.ErrUsage, err)
			}
			if req.To, err = parseDay(*to); err != nil {
				return fmt.Errorf("%w: --to: %w", cli.ErrUsage, err)
			}
			stream, err := s.bank.ExportStatements(ctx, req)
			if err != nil {
				return err
			}
			return printTransactions(e.stdout, stream)
		})
}

// printTransactions prints the transaction of each message of a server
// stream, one a line, until the stream ends.
func printTransactions[M interface{ GetTransaction() *bankv1.Transaction }](w io.Writer, stream interface{ Recv() (M, error) }) error {
	for {
		res, err := stream.Recv()
		if err == io.EOF { // exactly io.EOF, as gRPC reports the end of a stream
			return nil
		}
		if err != nil {
			return err
		}
		printTransaction(w, res.GetTransaction())
	}
}

func printTransaction(w io.Writer, tx *bankv1.Transaction) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", tx.GetTransactionId(),
		tx.GetBookedAt().AsTime().UTC().Format(time.RFC3339), money(tx.GetAmount()),
		tx.GetCounterpartyIban(), tx.GetReference())
}

// describe turns a refused call into a one-line error with the status code
// and, for a Stepup refusal, its wire reason.
func describe(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if reason := interceptor.ReasonFromError(err); reason != "" {
		return fmt.Errorf("%s (%s): %s", st.Code(), reason, st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// money renders minor units with two decimals: "120.00 EUR", "-120.00 EUR".
func money(m *bankv1.Money) string {
	v := m.GetAmountMinor()
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, v/100, v%100, m.GetCurrency())
}

// parseAmount parses a positive amount with at most two decimals into
// minor units: "120" and "120.00" are 12000.
func parseAmount(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("required")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || strings.HasPrefix(whole, "+") || strings.HasPrefix(whole, "-") {
		return 0, fmt.Errorf("%q is not a positive amount with at most two decimals", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || w > (1<<53)/100 {
		return 0, fmt.Errorf("%q is not a positive amount with at most two decimals", s)
	}
	minor := w*100 + f
	if minor <= 0 {
		return 0, fmt.Errorf("%q is not positive", s)
	}
	return minor, nil
}

// parseDay parses YYYY-MM-DD as midnight UTC; "" is no bound.
func parseDay(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return nil, err
	}
	return timestamppb.New(t), nil
}
