#!/bin/bash
# Builds the interop VM's boot files from Debian packages: OUT/vmlinuz (Debian's
# kernel) and OUT/initrd.cpio (a debootstrap minbase root with pppd, pptp-linux,
# pptpd and a few tools, its kernel modules cut down to the PPP/PPTP/virtio ones,
# booted straight from the initramfs with tests/vm/init.sh as PID 1).
#
# Usage: build-image.sh OUT INIT SUITE MIRROR PACKAGE...
# OUT must not exist; it appears complete or not at all.
# Run by pptp_tests::vm::image (cached under /var/cache/pptp-xdp/vm/<key>/).
set -euo pipefail
out=$1 init=$2 suite=$3 mirror=$4
shift 4
packages=$(IFS=,; echo "$*")

work=$(mktemp -d "${out%/}.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

kver=$(ls "$root/lib/modules")
[ "$(echo "$kver" | wc -w)" = 1 ] || { echo "expected one kernel, found: $kver" >&2; exit 1; }
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"

# Keep only the modules the scenarios load (and what they depend on); the kernel
# .deb ships no modules.dep of its own: depmod (the image's) runs before and after.
chroot "$root" depmod "$kver"
modules="virtio_pci virtio_net ppp_generic ppp_async ppp_synctty ppp_deflate bsd_comp ppp_mppe pptp gre"
keep=$(for m in $modules; do chroot "$root" modprobe -S "$kver" --show-depends "$m"; done \
    | awk '$1 == "insmod" { print $2 }' | sort -u)
mv "$root/lib/modules/$kver" "$work/modules"
for ko in $keep; do
    rel=${ko#/lib/modules/$kver/}
    mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
    cp "$work/modules/$rel" "$root/lib/modules/$kver/$rel"
done
cp "$work/modules"/modules.{builtin,builtin.modinfo,order} "$root/lib/modules/$kver/"
chroot "$root" depmod "$kver"

rm -rf "$root"/boot/* "$root"/usr/share/{doc,man,info,locale} "$root"/var/cache/apt/* \
    "$root"/var/lib/apt/lists/*
install -m 0755 "$init" "$root/init"

mkdir "$work/result"
mv "$work/vmlinuz" "$work/result/"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) > "$work/result/initrd.cpio"
mv -T "$work/result" "$out"
