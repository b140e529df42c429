package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/watch"
)

// watchTokenTTL is the lifetime of the tokens watch mints with --account.
const watchTokenTTL = time.Hour

func newWatch() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch [--url ws://localhost:8080/ws] [--token-file F | --account N] [--snapshot [--lists a,b]]",
		Short: "Follow a running notifier like a dashboard and print each event",
		Long: "watch connects to a running notifier's /ws as a dashboard does and prints one line\n" +
			"per event (time, event, id, summary), or each frame's JSON with --json. After a\n" +
			"drop it reconnects with backoff and resumes after the last event it printed.\n" +
			"With --snapshot it first prints the snapshot lists (GET /v1/snapshot/{list}: a\n" +
			"header per list and a line per item, or {\"list\":…,\"item\":…} lines with --json),\n" +
			"then follows from where they are, so that nothing is missed or printed twice.\n" +
			"The token is watch.token (NOTIFIER_WATCH_TOKEN), or the file watch.token_file\n" +
			"(--token-file) holds; or one minted for --account with auth.jwt_secret (which also\n" +
			"replaces a token that expires). Never a flag: ps and shell history show those.\n" +
			"Events go to stdout, notices to stderr.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: watch takes no arguments, got %q", errUsage, args)
			}
			return nil
		},
		RunE: runWatch,
	}
	f := cmd.Flags()
	f.String("url", "ws://localhost:8080/ws", "the notifier's /ws URL, or its base URL (http://host:port gets ws:// and /ws)")
	f.String("token-file", "", "file holding the dashboard token (JWT) to connect with (watch.token_file; or NOTIFIER_WATCH_TOKEN)")
	f.Int64("account", 0, "mint tokens for this account with auth.jwt_secret (NOTIFIER_AUTH_JWT_SECRET or --jwt-secret-file)")
	f.Int64("since", 0, "resume after this event id")
	f.String("events", "", "only these events, comma-separated (default: all the server allows)")
	f.Bool("json", false, "print each event's JSON frame instead of a summary line")
	f.Bool("snapshot", false, "first print the snapshot lists, then follow from them (not with --since)")
	f.String("lists", "", "with --snapshot: these lists, comma-separated (default: every list GET /v1/snapshot names)")
	return cmd
}

func runWatch(cmd *cobra.Command, _ []string) error {
	flags := cmd.Flags()
	rawURL, _ := flags.GetString("url")
	account, _ := flags.GetInt64("account")
	since, _ := flags.GetInt64("since")
	events, _ := flags.GetString("events")
	asJSON, _ := flags.GetBool("json")
	snapshot, _ := flags.GetBool("snapshot")
	lists, err := watchLists(flags.Changed("lists"), snapshot, flags.Lookup("lists").Value.String())
	if err != nil {
		return err
	}
	switch {
	case account < 0:
		return fmt.Errorf("%w: --account must be a positive account id", errUsage)
	case since < 0:
		return fmt.Errorf("%w: --since must be a non-negative event id", errUsage)
	case snapshot && since > 0:
		return fmt.Errorf("%w: --snapshot follows from the lists' own position: drop --since", errUsage)
	}
	wsURL, err := watchURL(rawURL, events)
	if err != nil {
		return err
	}
	cfg, err := load(cmd)
	if err != nil {
		return err
	}
	token := cfg.Watch.Token
	if token == "" && account == 0 {
		return fmt.Errorf("%w: watch needs a token (NOTIFIER_WATCH_TOKEN or --token-file), or --account with auth.jwt_secret to mint one", errUsage)
	}
	var mint func() (string, error)
	if account > 0 {
		if err := cfg.RequireSecret(); err != nil {
			if token == "" {
				return err
			}
		} else {
			secret, claim := []byte(cfg.Auth.JWTSecret), cfg.Auth.AccountClaim
			mint = func() (string, error) { return auth.Mint(secret, claim, account, watchTokenTTL, time.Now()) }
		}
	}
	err = watch.Run(cmd.Context(), watch.Config{
		URL:       wsURL,
		Token:     token,
		TokenFunc: mint,
		Since:     since,
		JSON:      asJSON,
		Snapshot:  snapshot,
		Lists:     lists,
		Out:       cmd.OutOrStdout(),
		Status:    cmd.ErrOrStderr(),
	})
	if errors.Is(err, watch.ErrTokenExpired) {
		return fmt.Errorf("%w (give a fresh one in NOTIFIER_WATCH_TOKEN or --token-file, or --account with auth.jwt_secret to mint one)", err)
	}
	return err
}

// watchLists reads --lists, which needs --snapshot: nil for every list.
func watchLists(set, snapshot bool, raw string) ([]string, error) {
	if !set {
		return nil, nil
	}
	if !snapshot {
		return nil, fmt.Errorf("%w: --lists chooses the lists of --snapshot", errUsage)
	}
	var lists []string
	for name := range strings.SplitSeq(raw, ",") {
		if name = strings.TrimSpace(name); name != "" {
			lists = append(lists, name)
		}
	}
	if len(lists) == 0 {
		return nil, fmt.Errorf("%w: --lists names no list", errUsage)
	}
	return lists, nil
}

// watchURL checks --url, turns http(s) into ws(s) and adds --events.
func watchURL(raw, events string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%w: --url %q is not a URL like ws://localhost:8080/ws", errUsage, raw)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("%w: --url %q: want ws://, wss://, http:// or https://", errUsage, raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws" // the base URL the demo prints
	}
	if events = strings.TrimSpace(events); events != "" {
		q := u.Query()
		q.Set("events", events)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}
