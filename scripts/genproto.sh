#!/usr/bin/env bash
# Regenerates the Go code for every .proto file in the repository. The
# generated files are committed, so building and CI never need protoc; run
# this only after editing a .proto file.
#
# Needs: protoc (Debian: apt-get install protobuf-compiler) and protoc-gen-go:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
command -v protoc-gen-go >/dev/null || { echo "protoc-gen-go not found: go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12" >&2; exit 1; }
find . -path ./.git -prune -o -name '*.proto' -print | sort | while read -r f; do
  protoc --proto_path=. --go_out=. --go_opt=paths=source_relative "$f"
  echo "generated ${f%.proto}.pb.go"
done
