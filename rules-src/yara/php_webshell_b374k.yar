// b374k: a packed PHP shell, recognisable by its name and its self-decoding loader.
rule Php_Webshell_B374k_1
{
    meta:
        severity = "critical"
        description = "b374k PHP webshell"
        author = "vigil rules team"
        reference = "https://github.com/b374k/b374k"
        date = "2026-11-25"
    strings:
        $name = "b374k" nocase
        $loader = /\$[a-z0-9_]{1,20}\s*=\s*"[A-Za-z0-9+\/=]{200}/
        $func = "gzinflate(base64_decode(" nocase
    condition:
        filesize < 3MB and $name and ($loader or $func)
}
