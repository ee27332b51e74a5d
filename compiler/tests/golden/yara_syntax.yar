rule Yara_Syntax
{
    meta:
        severity = "low"
        description = "d"
        author = "a"
        reference = "r"
        date = "2026-01-01"
    condition:
        true and
}
