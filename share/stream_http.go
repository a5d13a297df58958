package share

import (
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// ServeStream answers an HTTP request for the file sr reads, with range
// requests handled by http.ServeContent: a media player can seek in a
// download in progress, and each range waits for its groups (see
// StreamReader). A friend's file is hostile input, so the reply is never
// sniffed (nosniff), runs nothing if a browser opens it (a sandbox CSP),
// and anything whose name does not say audio or video is sent as an
// attachment of type application/octet-stream, so that a browser saves it
// instead of rendering it.
func ServeStream(w http.ResponseWriter, req *http.Request, sr *StreamReader) {
	name := sr.Name()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "no-store")
	if media := MediaType(name); media != "" {
		h.Set("Content-Type", media)
		h.Set("Content-Disposition", disposition("inline", name))
	} else {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", disposition("attachment", name))
	}
	http.ServeContent(w, req, "", time.Time{}, sr)
}

// mediaTypes are the audio and video types of common extensions, whatever
// the system's mime tables say.
var mediaTypes = map[string]string{
	".mp4": "video/mp4", ".m4v": "video/mp4", ".mkv": "video/x-matroska", ".webm": "video/webm",
	".mov": "video/quicktime", ".avi": "video/x-msvideo", ".ts": "video/mp2t", ".mpg": "video/mpeg",
	".mpeg": "video/mpeg", ".ogv": "video/ogg", ".mp3": "audio/mpeg", ".flac": "audio/flac",
	".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4",
	".wav": "audio/wav", ".aac": "audio/aac", ".mka": "audio/x-matroska",
}

// MediaType returns the audio or video type that name's extension says, or
// "" if it says neither.
func MediaType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := mediaTypes[ext]; ok {
		return t
	}
	if media, _, err := mime.ParseMediaType(mime.TypeByExtension(ext)); err == nil &&
		(strings.HasPrefix(media, "video/") || strings.HasPrefix(media, "audio/")) {
		return media
	}
	return ""
}

// disposition returns a Content-Disposition of kind for a file name.
func disposition(kind, name string) string {
	if d := mime.FormatMediaType(kind, map[string]string{"filename": name}); d != "" {
		return d
	}
	return kind
}
