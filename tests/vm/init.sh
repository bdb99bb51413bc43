#!/bin/bash
# PID 1 of the interop VM (booted from its initramfs, no init system, no udev).
# Mounts the kernel file systems, loads the virtio NIC driver, starts a syslog
# (pptpd and pppd log there), then serves the host on the second serial port:
# each line the host sends is a base64 shell script; the reply is one line
# "DONE <exit status> <base64 of its output>". The host drives every scenario
# with these commands (pptp_tests::vm::Guest).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/lock /var/log
ip link set lo up
modprobe virtio_pci
modprobe virtio_net
busybox syslogd -O /tmp/messages
echo pptp-interop > /proc/sys/kernel/hostname

control=/dev/ttyS1
stty -F "$control" raw -echo
exec 3<>"$control"
echo READY >&3
while IFS= read -r line <&3; do
    printf '%s' "$line" | base64 -d > /tmp/command.sh
    bash /tmp/command.sh < /dev/null > /tmp/command.out 2>&1
    status=$?
    printf 'DONE %s %s\n' "$status" "$(base64 -w0 < /tmp/command.out)" >&3
done
