rule Yara_Dup_Name
{
    meta:
        severity = "low"
        description = "d"
        author = "a"
        reference = "r"
        date = "2026-01-01"
    strings:
        $a = "yara-dup"
    condition:
        $a
}
