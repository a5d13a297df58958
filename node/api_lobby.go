package node

import "net/http"

// lobbyAPIErrors are the lobby errors the API maps to codes.
var lobbyAPIErrors = []apiErrorCode{}

func (a *apiServer) lobbyRoutes(mux *http.ServeMux) {}
