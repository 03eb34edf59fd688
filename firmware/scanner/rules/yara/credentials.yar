// Metal Automata's shipped YARA pack (Apache-2.0, like the rest of the project).
// Fixed root credentials baked into an image: every unit shipped with it shares them. Firmware
// that carries a Linux userland (BMCs, management engines, NIC and storage controllers) holds
// /etc/passwd and /etc/shadow inside its cpio/tar/gzip layers, which the walker decompresses.

rule RootPasswordHashInFirmware
{
    meta:
        severity = "medium"
        description = "a shadow entry with root's password hash: the image ships a fixed root password, the same on every unit and crackable offline"
    strings:
        // crypt(3) ids: md5, bcrypt, sha256, sha512, yescrypt, gost-yescrypt, scrypt.
        $hash = /root:\$(1|2[aby]|5|6|y|gy|7)\$[.\/0-9A-Za-z$]{20,140}:/
    condition:
        $hash
}

rule RootWithoutPassword
{
    meta:
        severity = "high"
        description = "a passwd or shadow entry giving root an empty password: anyone reaching a login prompt or SSH of this firmware is root"
    strings:
        $passwd = "root::0:0:"
        $shadow = /root::[0-9]{1,6}:[0-9]{0,6}:[0-9]{0,6}:/
    condition:
        any of them
}
