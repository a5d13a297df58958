package node

import (
	"errors"
	"net/http"

	"kith/node/api"
)

// webRoutes are the API endpoints the web UI adds. /v1/web/... is for the
// unix socket only (the web server does not serve it to browsers): a login
// link is made there, where only the node's user can ask.
func (a *apiServer) webRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/web", a.webInfo)
	mux.HandleFunc("POST /v1/web/login", a.webLogin)
	mux.HandleFunc("PATCH /v1/friends/{ref}", a.renameFriend)
}

func (a *apiServer) webInfo(w http.ResponseWriter, r *http.Request) {
	web, err := a.n.webState()
	if err != nil {
		writeJSON(w, http.StatusOK, api.WebInfo{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, api.WebInfo{Running: true, URL: web.url()})
}

func (a *apiServer) webLogin(w http.ResponseWriter, r *http.Request) {
	web, err := a.n.webState()
	if err != nil {
		writeError(w, err)
		return
	}
	url, exp := web.loginLink()
	writeJSON(w, http.StatusCreated, api.WebLogin{URL: url, Expires: exp.UTC()})
}

func (a *apiServer) renameFriend(w http.ResponseWriter, r *http.Request) {
	var req api.RenameFriendRequest
	if !readJSON(w, r, &req) {
		return
	}
	f, err := a.n.friends.Rename(r.PathValue("ref"), req.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	fi := a.n.reach.withPath(friendJSON(f), f)
	a.n.events.Publish(api.EventFriendRenamed, fi)
	writeJSON(w, http.StatusOK, fi)
}

// webState returns the running web server, or why there is none.
func (n *Node) webState() (*webServer, error) {
	if n.web != nil {
		return n.web, nil
	}
	if n.webErr != nil {
		return nil, n.webErr
	}
	return nil, errors.Join(ErrWebOff, errors.New("switched off (`kith up --no-web` or `kith config set web off`)"))
}

// WebURL is the web UI's address (no login token), "" when it is not
// running.
func (n *Node) WebURL() string {
	if n.web == nil {
		return ""
	}
	return n.web.url()
}

// startWebUI starts the web UI if cfg asks for it: on cfg.WebAddr, else
// the stored setting (chosen and stored now for a home made before it
// existed). An address it cannot listen on is logged and reported by
// `kith web`; the node runs on without it.
func (n *Node) startWebUI() error {
	if !n.cfg.Web || n.api == nil {
		return nil
	}
	addr := n.cfg.WebAddr
	if addr == "" {
		n.settingsMu.Lock()
		addr = n.settings.Web
		if addr == "" {
			s := n.settings
			s.Web = chooseWebAddr()
			if err := saveSettings(n.db, s); err != nil {
				n.settingsMu.Unlock()
				return err
			}
			n.settings, addr = s, s.Web
		}
		n.settingsMu.Unlock()
	}
	if addr == webOff {
		return nil
	}
	addr, err := parseWebAddr(addr)
	if err != nil {
		return err
	}
	if n.web, err = startWeb(n, addr, n.api.srv.Handler); err != nil {
		n.webErr = err
		n.log.Warn("web UI not started", "err", err)
	}
	return nil
}

// webOff is the web setting's value that switches the web UI off.
const webOff = "off"
