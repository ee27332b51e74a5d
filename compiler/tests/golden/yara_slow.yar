rule Yara_Slow_Pattern
{
    meta:
        severity = "low"
        description = "d"
        author = "a"
        reference = "r"
        date = "2026-01-01"
    strings:
        $a = { 00 00 00 00 }
    condition:
        $a
}

rule Yara_Slow_Loop
{
    meta:
        severity = "low"
        description = "d"
        author = "a"
        reference = "r"
        date = "2026-01-01"
    condition:
        for all i in (0..filesize) : (uint8(i) == 0)
}
