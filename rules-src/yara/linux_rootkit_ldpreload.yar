// Userland rootkits that hide through /etc/ld.so.preload and hooked libc functions.
rule Linux_Rootkit_LdPreload_1
{
    meta:
        severity = "high"
        description = "Userland LD_PRELOAD rootkit hooking directory listing"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1574/006/"
        date = "2026-11-25"
    strings:
        $preload = "/etc/ld.so.preload"
        $h1 = "readdir64"
        $h2 = "dlsym"
        $h3 = "RTLD_NEXT"
        $hide = /hide(_|)(file|proc|pid|port)/ nocase
    condition:
        uint32(0) == 0x464c457f and $preload and $h1 and $h2 and ($h3 or $hide)
}
