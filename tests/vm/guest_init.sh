#!/bin/sh
# /init of the kTLS guest (busybox sh): mount what the checks read, bring up
# loopback (the guest has no other network), run the checks, power off.
# Everything the host needs comes back over the serial console as lines
# that start with "RMVM " (tests/vm/test_ktls_vm.py parses them).
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o size=512m tmp /tmp
ip link set lo up
hostname ringmail-vm
printf '127.0.0.1 localhost\n::1 localhost\n' > /etc/hosts
echo "RMVM BOOTED kernel=$(uname -r) cpus=$(nproc) mem_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
sh /vm/guest_checks.sh
echo "RMVM DONE rc=$?"
sync
poweroff -f
