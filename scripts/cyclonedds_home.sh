#!/bin/sh
# The Python binding cyclonedds==0.10.2 (unitree-sdk2's DDS) is an sdist that builds against the
# C library. Debian's cyclonedds-dev (0.10.2) installs it under the multiarch lib directory; the
# binding's build looks for <home>/{include,bin,lib}/libddsc.so. This makes such a <home> of
# symlinks at $1 and prints it.
set -e
home="$1"
arch=$(python3 -c "import sysconfig; print(sysconfig.get_config_var('MULTIARCH') or '')")
libdir=/usr/lib/$arch
[ -e "$libdir/libddsc.so" ] || libdir=/usr/lib
mkdir -p "$home"
ln -sfn /usr/include "$home/include"
ln -sfn /usr/bin "$home/bin"
ln -sfn "$libdir" "$home/lib"
echo "$home"
