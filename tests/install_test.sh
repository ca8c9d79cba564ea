#!/usr/bin/env bash
# `cmake --install` puts the binary, man page, docs and completions in the
# prefix; the installed binary runs; the bash completion completes commands,
# flags, stage ids of a pipeline file and kind names.
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in bin/medpipe share/man/man1/medpipe.1 share/doc/medpipe/pipeline-format.md \
         share/bash-completion/completions/medpipe share/zsh/site-functions/_medpipe; do
  [[ -e $tmp/prefix/$f ]] || fail "$f not installed"
done
"$tmp/prefix/bin/medpipe" --version | grep -q '^medpipe 0\.' || fail "--version"
"$tmp/prefix/bin/medpipe" --version | grep -q 'DCMTK' || fail "--version lists libraries"
man -l "$tmp/prefix/share/man/man1/medpipe.1" >/dev/null 2>&1 || command -v man >/dev/null || true

export PATH="$tmp/prefix/bin:$PATH"
# shellcheck disable=SC1091
source "$tmp/prefix/share/bash-completion/completions/medpipe"
complete_line() {  # words... ; the last word is the one being completed
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _medpipe
  echo "${COMPREPLY[*]}"
}
cat >"$tmp/p.yaml" <<'YAML'
name: t
stages:
  - id: annotate_all
    kind: annotate
    params: {images: data}
  - id: four
    kind: filter
    inputs: [annotate_all]
    params: {categories: [A]}
YAML
[[ $(complete_line medpipe st) == "stages status" || $(complete_line medpipe st) == "status stages" ]] \
  || fail "commands: $(complete_line medpipe st)"
[[ $(complete_line medpipe run "$tmp/p.yaml" --fr) == "--from" ]] || fail "flags"
[[ $(complete_line medpipe run "$tmp/p.yaml" --from a) == "annotate_all" ]] || fail "ids: $(complete_line medpipe run "$tmp/p.yaml" --from a)"
[[ $(complete_line medpipe clean "$tmp/p.yaml" f) == "four" ]] || fail "clean ids"
[[ $(complete_line medpipe stages spl) == "split" ]] || fail "kinds: $(complete_line medpipe stages spl)"
[[ $(complete_line medpipe clean "$tmp/p.yaml" --orp) == "--orphans" ]] || fail "clean flags"
echo "install and completion ok"
