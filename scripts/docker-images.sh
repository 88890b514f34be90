#!/usr/bin/env bash
# Makes what the Docker examples and their tests need on a machine without an image registry,
# and stages the static binaries where the Dockerfiles copy them from. Needs root (debootstrap)
# and a running Docker engine. Idempotent and cached: a second run takes seconds.
#
#   debian:bookworm-slim        the examples' base image: debootstrap --variant=minbase bookworm,
#                               slimmed as Debian's own -slim image is, and `docker import`ed;
#                               built only when the engine lacks it (a registry would give it)
#   examples/hello-world/pilot  the static x86_64 pilot (cargo build --release --target
#                               x86_64-unknown-linux-musl -p pilot), for the example's Dockerfiles
#   examples/scratch/app        examples/scratch/app.c, static (musl-gcc)
#   pilot:latest, pilot:VERSION the pilot image (docker/pilot.Dockerfile): FROM scratch, the binary
#   pilot-consul-double:latest  the Consul test double, static, FROM scratch
#                               (docker/consul-double.Dockerfile)
#
# DEBIAN_MIRROR overrides the mirror debootstrap and the base image's apt sources use.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

base=debian:bookworm-slim
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
triple=x86_64-unknown-linux-musl
stage=$target_dir/docker

say() { printf 'docker-images: %s\n' "$*"; }

docker info >/dev/null 2>&1 || { say "no Docker engine answers (docker info failed)"; exit 1; }

# Two runs at once (two tests, or a test and a user) would both debootstrap and race on the
# staged files: one runs, the other waits and then finds everything made.
exec 9>/tmp/pilot-docker-images.lock
flock 9

started=$SECONDS

# The base image: what `docker pull debian:bookworm-slim` would give, made here from Debian's
# packages. Slimmed as Debian's images are (debuerreotype's "slimify"): no documentation,
# manual pages or translations, now or in packages installed later; apt keeps no package
# files or indexes in the image.
make_base() {
  command -v debootstrap >/dev/null || { say "debootstrap is missing: scripts/deps.sh installs it"; exit 1; }
  local dir
  dir=$(mktemp -d /var/tmp/pilot-debootstrap.XXXXXX)
  # shellcheck disable=SC2064  # the directory is known now
  trap "rm -rf '$dir'" EXIT
  say "making $base: debootstrap --variant=minbase bookworm ($mirror)"
  debootstrap --variant=minbase bookworm "$dir/root" "$mirror" >"$dir/debootstrap.log" 2>&1 \
    || { tail -20 "$dir/debootstrap.log"; say "debootstrap failed"; exit 1; }
  local root=$dir/root
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# As in Debian's -slim images: no documentation, manual pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
# As in Debian's images: apt keeps no downloaded package or cache in an image layer.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
APT::AutoRemove::SuggestsImportant "false";
EOF
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* \
    "$root"/usr/share/lintian/* "$root"/var/log/*.log "$root"/var/log/apt/*
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  # Docker gives each container its own; the build machine's must not end up in the image.
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
  tar --numeric-owner -C "$root" -c . \
    | docker import --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$dir"
  trap - EXIT
  say "made $base ($(docker image inspect -f '{{.Size}}' "$base") bytes)"
}

if docker image inspect "$base" >/dev/null 2>&1; then
  say "$base: present"
else
  make_base
fi

# The static binaries. The double is a test tool: the `test-tool` profile builds it quickly.
say "cargo build --release --target $triple -p pilot"
cargo build --quiet --release --target "$triple" -p pilot
say "cargo build --profile test-tool --target $triple -p consul-double"
cargo build --quiet --profile test-tool --target "$triple" -p consul-double --bin consul-double
pilot_bin=$target_dir/$triple/release/pilot
double_bin=$target_dir/$triple/test-tool/consul-double

# Copies only when the content changed, so that Docker's build cache stays valid.
stage_file() { # stage_file SOURCE DEST
  if ! cmp -s "$1" "$2"; then
    install -m 0755 "$1" "$2"
    say "staged $2"
  fi
}
stage_file "$pilot_bin" examples/hello-world/pilot
mkdir -p "$stage/pilot" "$stage/consul-double"
stage_file "$pilot_bin" "$stage/pilot/pilot"
stage_file "$double_bin" "$stage/consul-double/consul-double"
if [ ! -e examples/scratch/app ] || [ examples/scratch/app.c -nt examples/scratch/app ]; then
  command -v musl-gcc >/dev/null || { say "musl-gcc is missing: scripts/deps.sh installs it"; exit 1; }
  musl-gcc -static -Os -s -Wall -Wextra -Werror -o examples/scratch/app examples/scratch/app.c
  say "built examples/scratch/app"
fi

# Builds IMAGE (and more tags) from a Dockerfile; the image it replaces, left without a tag, is
# removed, so that rebuilding after each change does not pile up old binaries.
build_image() { # build_image DOCKERFILE CONTEXT IMAGE [TAG...]
  local dockerfile=$1 context=$2 image=$3 old tags=()
  shift 2
  for tag in "$@"; do tags+=(-t "$tag"); done
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  docker build --quiet "${tags[@]}" -f "$dockerfile" "$context" >/dev/null
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ] \
    && [ -z "$(docker image inspect -f '{{join .RepoTags ""}}' "$old" 2>/dev/null)" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
  say "$*: $(docker image inspect -f '{{.Size}}' "$image") bytes"
}

version=$("$pilot_bin" -version | sed -n 's/^Version: //p')
build_image docker/pilot.Dockerfile "$stage/pilot" pilot:latest "pilot:$version"
build_image docker/consul-double.Dockerfile "$stage/consul-double" pilot-consul-double:latest
say "done in $((SECONDS - started)) s"
