# bash completion for medpipe: commands, each command's flags, the stage ids
# of the pipeline file on the line, stage kinds and template names.
# Install: source this file, or copy it to
# /usr/share/bash-completion/completions/medpipe (cmake --install does).

# The stage ids of a pipeline file: the `- id: NAME` lines.
_medpipe_ids() {
  [[ -f $1 ]] && sed -n 's/^[[:space:]]*-\{0,1\}[[:space:]]*id:[[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$1"
}

_medpipe() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local cmd=${COMP_WORDS[1]:-} file=${COMP_WORDS[2]:-}
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W "run status graph validate clean stages init worker help --help --version" -- "$cur"))
    return
  fi
  case $prev in
    --from | --until | --only | --force | --stage)
      COMPREPLY=($(compgen -W "$(_medpipe_ids "$file")" -- "$cur"))
      return ;;
    --set)
      local id ids=""
      for id in $(_medpipe_ids "$file"); do ids+=" $id.params."; done
      compopt -o nospace 2>/dev/null
      COMPREPLY=($(compgen -W "$ids seed= workdir= strict=" -- "$cur"))
      return ;;
    --format) COMPREPLY=($(compgen -W "dot mermaid" -- "$cur")); return ;;
    --executor) COMPREPLY=($(compgen -W "local slurm" -- "$cur")); return ;;
    --template) COMPREPLY=($(compgen -W "minimal hemorrhage cxr ctprep echo" -- "$cur")); return ;;
    -j | --threads | --call | --shard) return ;;
  esac
  local flags=""
  case $cmd in
    run) flags="--from --until --only --force --dry-run -n --threads -j --strict --executor --set --help" ;;
    worker) flags="--stage --call --shard --threads -j --set --help" ;;
    status) flags="--json --set --help" ;;
    graph) flags="--format --set --help" ;;
    validate) flags="--set --help" ;;
    clean) flags="--dry-run -n --cascade --force --orphans --set --help" ;;
    stages) flags="--names --help" ;;
    init) flags="--template --help" ;;
    help)
      COMPREPLY=($(compgen -W "run status graph validate clean stages init worker" -- "$cur"))
      return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ $cmd == stages ]]; then
    COMPREPLY=($(compgen -W "$(medpipe stages --names 2>/dev/null)" -- "$cur"))
  elif [[ $cmd == init ]]; then
    COMPREPLY=($(compgen -d -- "$cur"))
  elif ((COMP_CWORD == 2)); then
    COMPREPLY=($(compgen -f -X '!*.@(yaml|yml)' -- "$cur") $(compgen -d -- "$cur"))
  elif [[ $cmd == clean ]]; then
    COMPREPLY=($(compgen -W "$(_medpipe_ids "$file")" -- "$cur"))
  fi
}

complete -F _medpipe medpipe
