// Diamorphine, a loadable-kernel-module rootkit common in cloud intrusions (TeamTNT & co).
rule Linux_Rootkit_Diamorphine_1
{
    meta:
        severity = "critical"
        description = "Diamorphine LKM rootkit"
        author = "vigil rules team"
        reference = "https://github.com/m0nad/Diamorphine"
        date = "2026-11-25"
    strings:
        $a = "diamorphine" nocase
        $b = "diamorphine_secret"
        $c = "hacked_kill"
        $d = "hacked_getdents"
        $e = "module_hide"
    condition:
        uint32(0) == 0x464c457f and 3 of them
}
