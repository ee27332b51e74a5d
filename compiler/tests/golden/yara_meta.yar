rule Yara_Meta
{
    meta:
        severity = "urgent"
        description = "d"
        author = "a"
        reference = "r"
    strings:
        $a = "yara-meta"
    condition:
        $a
}
