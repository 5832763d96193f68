#!/bin/sh
# Install or remove the Metrotech systemd units, sysusers.d/tmpfiles.d snippets and starter configuration.
#
#   sh systemd/units.sh install     (what `make install-units` runs)
#   sh systemd/units.sh uninstall   (what `make uninstall-units` runs)
#
# Settings come from the environment (the Makefile passes them): DESTDIR (staging root, empty for the
# real system), PREFIX (/opt/metrotech), SYSCONFDIR (/etc), UNITDIR, SYSUSERSDIR, TMPFILESDIR,
# BACKUPDIR, CALL_GRACE_SECONDS (20), START (1: start the services too).
#
# Re-running is safe: unchanged files are left alone, a different unit of the same name is backed up
# before it is replaced, and the operator's configuration is installed only when absent, never
# overwritten.  Uninstalling removes units and snippets and keeps configuration, data and the user.
set -eu
umask 022

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/metrotech}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-/etc/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-/etc/tmpfiles.d}
BACKUPDIR=${BACKUPDIR:-/var/backups/metrotech}
BINDIR=${BINDIR:-$PREFIX/venv/bin}
CALL_GRACE_SECONDS=${CALL_GRACE_SECONDS:-20}
START=${START:-0}

UNITS="metrotech-bot.service metrotech-fastapi.service metrotech.target"
SYNC_UNIT=metrotech-sync.service  # only with PROMPTS_REDIS_URL set in the env file (several hosts)
stamp=$(date -u +%Y%m%dT%H%M%SZ)

say() { printf '%s\n' "$*"; }

systemd_running() {
    [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

render() {  # render TEMPLATE OUTPUT
    case $CALL_GRACE_SECONDS in
        '' | *[!0-9]*) say "CALL_GRACE_SECONDS must be a whole number of seconds, not '$CALL_GRACE_SECONDS'" >&2; exit 2 ;;
    esac
    sed -e "s|@PREFIX@|$PREFIX|g" \
        -e "s|@BINDIR@|$BINDIR|g" \
        -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
        -e "s|@CALL_GRACE_SECONDS@|$CALL_GRACE_SECONDS|g" \
        -e "s|@STOP_TIMEOUT@|$((CALL_GRACE_SECONDS + 15))|g" \
        "$1" >"$2"
}

put() {  # put SOURCE DEST MODE: install, backing up a different file of the same name first
    if [ -e "$2" ] && cmp -s "$1" "$2"; then
        say "unchanged  $2"
        return
    fi
    if [ -e "$2" ]; then
        mkdir -p "$DESTDIR$BACKUPDIR"
        cp -p "$2" "$DESTDIR$BACKUPDIR/$(basename "$2").$stamp"
        say "backed up  $2 -> $DESTDIR$BACKUPDIR/$(basename "$2").$stamp"
    fi
    mkdir -p "$(dirname "$2")"
    install -m "$3" "$1" "$2.new.$$"
    mv -f "$2.new.$$" "$2"
    say "installed  $2"
}

redis_configured() {  # redis_configured ENVFILE: PROMPTS_REDIS_URL set (non-empty, not commented out)
    [ -f "$1" ] && grep -Eq '^[[:space:]]*(export[[:space:]]+)?PROMPTS_REDIS_URL=[[:space:]]*["'"'"']?[^"'"'"'[:space:]#]' "$1"
}

put_if_absent() {  # put_if_absent SOURCE DEST MODE: the operator's file is never overwritten
    if [ -e "$2" ]; then
        say "kept       $2"
        return
    fi
    mkdir -p "$(dirname "$2")"
    install -m "$3" "$1" "$2"
    say "installed  $2"
}

# The layout (README "Where the files are"): $SYSCONFDIR/metrotech is root's (0755) and holds the env file;
# only $SYSCONFDIR/metrotech/prompts (root:metrotech 2775) is group-writable, and it holds only what the
# panel writes: prompts.json and kb/.  A group member can edit those, never rename the env file or a unit.

owner_of() { stat -c %u "$1"; }

secure_conf_dir() {  # the configuration directory: root's, not group-writable (older installs: 2775)
    mkdir -p "$conf"
    if [ -z "$DESTDIR" ]; then
        chown root:root "$conf"
    fi
    if [ "$(stat -c %a "$conf")" != 755 ]; then
        chmod 0755 "$conf" && chmod g-s "$conf"
        say "secured    $conf (0755, no longer group-writable)"
    fi
    # While the directory was group-writable, a group member could have planted prompts/ (a symlink, or a
    # directory of theirs): set it aside, never write through it.
    if [ -L "$data" ] || { [ -e "$data" ] && [ ! -d "$data" ]; } ||
        { [ -d "$data" ] && [ -z "$DESTDIR" ] && [ "$(owner_of "$data")" != 0 ]; }; then
        mv "$data" "$data.suspect.$stamp"
        say "set aside  $data -> $data.suspect.$stamp (not created by root; check it)"
    fi
    if [ ! -d "$data" ]; then
        mkdir -m 2775 "$data"
        say "installed  $data"
    fi
    if [ "$(stat -c %a "$data")" != 2775 ]; then
        chmod 2775 "$data"
    fi
}

migrate_layout() {  # prompts.json and kb/ of an older install move into prompts/, the env file follows them
    for item in prompts.json kb; do
        old="$conf/$item"
        new="$data/$item"
        if [ -L "$old" ]; then
            say "left       $old (a symlink; not followed)"
        elif [ -e "$old" ] && [ -e "$new" ]; then
            say "left       $old (kept $new; remove the old one when you have compared them)"
        elif [ -e "$old" ]; then
            mv "$old" "$new"
            say "moved      $old -> $new"
        fi
    done
    env="$conf/metrotech.env"
    old_prompts="$SYSCONFDIR/metrotech/prompts.json"
    old_kb="$SYSCONFDIR/metrotech/kb"
    if [ -f "$env" ] && [ ! -L "$env" ] && grep -Eq "$old_prompts|$old_kb([/\"' ]|\$)" "$env"; then
        mkdir -p "$DESTDIR$BACKUPDIR"
        cp -p "$env" "$DESTDIR$BACKUPDIR/metrotech.env.$stamp"
        # Rewritten in place (cat >): the file keeps its inode, owner and mode.
        sed -e "s#$old_prompts#$SYSCONFDIR/metrotech/prompts/prompts.json#g" \
            -e "s#$old_kb\([/\"' ]\|\$\)#$SYSCONFDIR/metrotech/prompts/kb\1#g" "$env" >"$work/env.migrated"
        cat "$work/env.migrated" >"$env"
        say "updated    $env (the new paths; backed up to $DESTDIR$BACKUPDIR/metrotech.env.$stamp)"
    fi
}

install_all() {
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    for unit in $UNITS; do
        render "$here/$unit.in" "$work/$unit"
        put "$work/$unit" "$DESTDIR$UNITDIR/$unit" 0644
    done
    render "$here/metrotech.sysusers.conf.in" "$work/sysusers.conf"
    put "$work/sysusers.conf" "$DESTDIR$SYSUSERSDIR/metrotech.conf" 0644
    render "$here/metrotech.tmpfiles.conf.in" "$work/tmpfiles.conf"
    put "$work/tmpfiles.conf" "$DESTDIR$TMPFILESDIR/metrotech.conf" 0644

    conf="$DESTDIR$SYSCONFDIR/metrotech"
    data="$conf/prompts"
    secure_conf_dir
    migrate_layout
    render "$here/metrotech.env.in" "$work/metrotech.env"
    put_if_absent "$work/metrotech.env" "$conf/metrotech.env" 0640
    put_if_absent "$repo/config/prompts.json" "$data/prompts.json" 0664
    if [ -e "$data/kb" ]; then
        say "kept       $data/kb"
    else
        mkdir -p "$data/kb"
        chmod 2775 "$data/kb"
        for f in "$repo"/config/kb/*; do
            [ -f "$f" ] && install -m 0664 "$f" "$data/kb/"
        done
        say "installed  $data/kb"
    fi

    if redis_configured "$conf/metrotech.env"; then
        render "$here/$SYNC_UNIT.in" "$work/$SYNC_UNIT"
        put "$work/$SYNC_UNIT" "$DESTDIR$UNITDIR/$SYNC_UNIT" 0644
        UNITS="$UNITS $SYNC_UNIT"
    elif [ -e "$DESTDIR$UNITDIR/$SYNC_UNIT" ]; then
        if systemd_running; then
            systemctl disable --now "$SYNC_UNIT" || true
        fi
        rm -f "$DESTDIR$UNITDIR/$SYNC_UNIT"
        say "removed    $DESTDIR$UNITDIR/$SYNC_UNIT (PROMPTS_REDIS_URL is no longer set: one host)"
    else
        say "skipped    $SYNC_UNIT (PROMPTS_REDIS_URL is not set in $conf/metrotech.env: one host)"
    fi

    if [ -n "$DESTDIR" ]; then
        say "DESTDIR set: not creating the user, not touching systemd"
        return
    fi
    # The user first, then owners and modes (tmpfiles), then Asterisk into the group for the sounds.
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$SYSUSERSDIR/metrotech.conf"
    fi
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create "$TMPFILESDIR/metrotech.conf"
    fi
    if id asterisk >/dev/null 2>&1 && ! id -nG asterisk | tr ' ' '\n' | grep -qx metrotech; then
        usermod -aG metrotech asterisk
        say "added user asterisk to group metrotech (restart Asterisk to pick it up)"
    fi
    if systemd_running; then
        systemctl daemon-reload
        # reenable drops links a hand-made unit of the same name left (multi-user.target.wants/…).
        systemctl reenable $UNITS
        if [ "$START" = 1 ]; then
            systemctl start metrotech.target
            say "started    metrotech.target"
        fi
    else
        say "systemd is not running: enable later with 'systemctl enable --now metrotech.target'"
    fi
}

uninstall_all() {
    if [ -e "$DESTDIR$UNITDIR/$SYNC_UNIT" ]; then
        UNITS="$UNITS $SYNC_UNIT"
    fi
    if systemd_running; then
        systemctl disable --now $UNITS || true
    fi
    for unit in $UNITS; do
        rm -f "$DESTDIR$UNITDIR/$unit"
        say "removed    $DESTDIR$UNITDIR/$unit"
    done
    rm -f "$DESTDIR$SYSUSERSDIR/metrotech.conf" "$DESTDIR$TMPFILESDIR/metrotech.conf"
    say "removed    $DESTDIR$SYSUSERSDIR/metrotech.conf $DESTDIR$TMPFILESDIR/metrotech.conf"
    if systemd_running; then
        systemctl daemon-reload
        systemctl reset-failed $UNITS 2>/dev/null || true
    fi
    say "kept       $DESTDIR$SYSCONFDIR/metrotech, /var/lib/metrotech and the user metrotech"
}

case ${1:-} in
    install) install_all ;;
    uninstall) uninstall_all ;;
    *) say "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
