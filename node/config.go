package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"

	"kith/f2f"
	"kith/internal/store"
	"kith/internal/version"
	"kith/node/api"
	"kith/share"
)

// ErrBadSetting means a `kith config` key is unknown or its value invalid.
var ErrBadSetting = api.ErrBadSetting

// settingKey describes one key: how to show, check and store its value.
type settingKey struct {
	key, help, def string
	live           bool
	get            func(*Settings) string
	set            func(*Settings, string) error
}

var settingKeys = []settingKey{
	{key: "name", help: "your nickname, carried in your invite", live: true,
		get: func(s *Settings) string { return s.Name },
		set: func(s *Settings, v string) error {
			if err := f2f.CheckName(v); err != nil {
				return err
			}
			s.Name = v
			return nil
		}},
	{key: "port", help: "the TCP and QUIC port on every interface (when listen is unset)",
		get: func(s *Settings) string { return strconv.Itoa(s.Port) },
		set: func(s *Settings, v string) error {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("%w: port %q: want 1-65535", ErrBadSetting, v)
			}
			s.Port = p
			return nil
		}},
	{key: "listen", help: "multiaddrs to listen on, comma-separated; empty: every interface on port", def: "",
		get: func(s *Settings) string { return strings.Join(s.Listen, ",") },
		set: func(s *Settings, v string) error {
			var out []string
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a == "" {
					continue
				}
				if _, err := ma.NewMultiaddr(a); err != nil {
					return fmt.Errorf("%w: listen address %q: %v", ErrBadSetting, a, err)
				}
				out = append(out, a)
			}
			s.Listen = out
			return nil
		}},
	{key: "max-upload", help: "cap on uploads, bytes per second (64MiB, 10MB; 0: none)", def: "0",
		get: func(s *Settings) string { return rateText(s.MaxUpload) },
		set: func(s *Settings, v string) (err error) { s.MaxUpload, err = share.ParseRate(v); return err }},
	{key: "max-download", help: "cap on downloads, bytes per second (0: none)", def: "0",
		get: func(s *Settings) string { return rateText(s.MaxDownload) },
		set: func(s *Settings, v string) (err error) { s.MaxDownload, err = share.ParseRate(v); return err }},
	{key: "downloads", help: "the downloads folder (an absolute path); empty: HOME/downloads", def: "",
		get: func(s *Settings) string { return s.Downloads },
		set: func(s *Settings, v string) error {
			if v != "" && !filepath.IsAbs(v) {
				return fmt.Errorf("%w: downloads %q: want an absolute path", ErrBadSetting, v)
			}
			s.Downloads = v
			return nil
		}},
	{key: "announce", help: "addresses friends should dial besides those found (a forwarded port, a static address), comma-separated multiaddrs", def: "",
		get: func(s *Settings) string { return strings.Join(s.Announce, ",") },
		set: func(s *Settings, v string) error {
			var out []string
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a != "" {
					out = append(out, a)
				}
			}
			if _, err := parseAnnounce(out); err != nil {
				return err
			}
			s.Announce = out
			return nil
		}},
	{key: "relay", help: "relay for friends that cannot reach each other directly (true or false)", def: "true",
		get: func(s *Settings) string { return strconv.FormatBool(!s.NoRelay) },
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%w: relay %q: want true or false", ErrBadSetting, v)
			}
			s.NoRelay = !b
			return nil
		}},
	{key: "swarm", help: "serve the verified parts of files while you download them, so friends fetching the same file fetch from each other (true or false); a friend who asks learns what you are fetching", def: "true",
		get: func(s *Settings) string { return strconv.FormatBool(!s.NoSwarm) },
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%w: swarm %q: want true or false", ErrBadSetting, v)
			}
			s.NoSwarm = !b
			return nil
		}},
	{key: "relay-rate", help: "cap on relaying for friends, bytes per second, all circuits together (0: none)", def: strconv.Itoa(f2f.DefaultRelayRate),
		get: func(s *Settings) string {
			switch {
			case s.RelayRate < 0:
				return "0"
			case s.RelayRate == 0:
				return strconv.Itoa(f2f.DefaultRelayRate)
			}
			return strconv.FormatInt(s.RelayRate, 10)
		},
		set: func(s *Settings, v string) error {
			r, err := share.ParseRate(v)
			if err != nil {
				return err
			}
			if r == 0 {
				r = -1
			}
			s.RelayRate = r
			return nil
		}},
	{key: "port-map", help: "ask the router for a port mapping with UPnP or NAT-PMP (true or false)", def: "true",
		get: func(s *Settings) string { return strconv.FormatBool(!s.NoPortMap) },
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%w: port-map %q: want true or false", ErrBadSetting, v)
			}
			s.NoPortMap = !b
			return nil
		}},
	{key: "approve-introductions", help: "keep introductions (kith id --introduce) for your approval instead of adding at once (true or false)", def: "false",
		get: func(s *Settings) string { return strconv.FormatBool(s.ApproveIntroductions) },
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%w: approve-introductions %q: want true or false", ErrBadSetting, v)
			}
			s.ApproveIntroductions = b
			return nil
		}},
	{key: "web", help: "the web UI's address, a loopback host:port (`kith web` prints its login link); off: none",
		def: fmt.Sprintf("127.0.0.1:%d", DefaultWebPort),
		get: func(s *Settings) string { return s.Web },
		set: func(s *Settings, v string) error {
			if v = strings.TrimSpace(v); v == webOff || v == "" {
				s.Web = v
				return nil
			}
			a, err := parseWebAddr(v)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrBadSetting, err)
			}
			s.Web = a
			return nil
		}},
	{key: "mdns", help: "announce the node on the LAN and find friends there (true or false)", def: "true",
		get: func(s *Settings) string { return strconv.FormatBool(!s.NoMDNS) },
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%w: mdns %q: want true or false", ErrBadSetting, v)
			}
			s.NoMDNS = !b
			return nil
		}},
}

func rateText(bps int64) string {
	if bps <= 0 {
		return "0"
	}
	return strconv.FormatInt(bps, 10)
}

func findSetting(key string) (settingKey, error) {
	i := slices.IndexFunc(settingKeys, func(k settingKey) bool { return k.key == key })
	if i < 0 {
		var keys []string
		for _, k := range settingKeys {
			keys = append(keys, k.key)
		}
		return settingKey{}, fmt.Errorf("%w: no key %q (keys: %s)", ErrBadSetting, key, strings.Join(keys, ", "))
	}
	return settingKeys[i], nil
}

// listSettings shows s key by key.
func listSettings(s Settings) []api.Setting {
	out := make([]api.Setting, 0, len(settingKeys))
	for _, k := range settingKeys {
		out = append(out, api.Setting{Key: k.key, Value: k.get(&s), Default: k.def, Help: k.help, Live: k.live})
	}
	return out
}

// changeSetting sets key to value in s.
func changeSetting(s *Settings, key, value string) (api.Setting, error) {
	k, err := findSetting(key)
	if err != nil {
		return api.Setting{}, err
	}
	if err := k.set(s, value); err != nil {
		if !errors.Is(err, ErrBadSetting) {
			err = fmt.Errorf("%w: %s: %w", ErrBadSetting, key, err)
		}
		return api.Setting{}, err
	}
	return api.Setting{Key: k.key, Value: k.get(s), Default: k.def, Help: k.help, Live: k.live}, nil
}

// Settings lists the node's settings.
func (n *Node) Settings() []api.Setting {
	n.settingsMu.Lock()
	defer n.settingsMu.Unlock()
	return listSettings(n.settings)
}

// SetSetting changes one setting and stores it. Live ones (the nickname)
// take effect at once: the next invite carries them.
func (n *Node) SetSetting(key, value string) (api.Setting, error) {
	n.settingsMu.Lock()
	defer n.settingsMu.Unlock()
	s := n.settings
	out, err := changeSetting(&s, key, value)
	if err != nil {
		return out, err
	}
	if err := saveSettings(n.db, s); err != nil {
		return out, err
	}
	n.settings = s
	return out, nil
}

// HomeSettings lists the settings of a home whose daemon is not running.
func HomeSettings(home string) ([]api.Setting, error) {
	var out []api.Setting
	err := withHomeDB(home, func(db *bolt.DB) error {
		s, err := loadSettings(db)
		out = listSettings(s)
		return err
	})
	return out, err
}

// SetHomeSetting changes a setting of a home whose daemon is not running.
func SetHomeSetting(home, key, value string) (api.Setting, error) {
	var out api.Setting
	err := withHomeDB(home, func(db *bolt.DB) error {
		s, err := loadSettings(db)
		if err != nil {
			return err
		}
		if out, err = changeSetting(&s, key, value); err != nil {
			return err
		}
		return saveSettings(db, s)
	})
	return out, err
}

func withHomeDB(home string, fn func(*bolt.DB) error) error {
	if err := CheckHome(home); err != nil {
		return err
	}
	db, err := store.Open(filepath.Join(home, DBFile), store.Options{Writer: version.Get().String()})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w (%s): change settings through it", ErrDaemonRunning, home)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// applySettings fills what cfg leaves unset from the stored settings: a
// field the caller set (a flag of `kith up`) wins for this run.
func applySettings(cfg Config, s Settings) Config {
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = s.Listen
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = s.MaxUpload
	}
	if cfg.MaxDownload == 0 {
		cfg.MaxDownload = s.MaxDownload
	}
	// A negative cap is a flag's explicit "no cap" over a stored one.
	cfg.MaxUpload, cfg.MaxDownload = max(cfg.MaxUpload, 0), max(cfg.MaxDownload, 0)
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = s.Downloads
	}
	if s.NoMDNS && !cfg.ForceMDNS {
		cfg.MDNS = false
	}
	if len(cfg.Announce) == 0 {
		cfg.Announce = s.Announce
	}
	cfg.NoRelay = cfg.NoRelay || s.NoRelay
	cfg.NoSwarm = cfg.NoSwarm || s.NoSwarm
	cfg.NoPortMap = cfg.NoPortMap || s.NoPortMap
	cfg.ApproveIntroductions = cfg.ApproveIntroductions || s.ApproveIntroductions
	if cfg.RelayRate == 0 {
		cfg.RelayRate = s.RelayRate
	}
	return cfg
}
