// The c99 / r57 family of full-featured PHP file-manager shells and their clones.
rule Php_Webshell_C99_1
{
    meta:
        severity = "critical"
        description = "c99/r57-style PHP file-manager webshell"
        author = "vigil rules team"
        reference = "https://www.trendmicro.com/vinfo/us/threat-encyclopedia/malware/php_c99shell"
        date = "2026-11-25"
    strings:
        $a = "c99shell" nocase
        $b = "c99_buff_prepare"
        $c = "r57shell" nocase
        $d = "safe_mode" nocase
        $e = "disable_functions" nocase
        $f = "$_POST['act']" nocase
    condition:
        filesize < 3MB and ($b or (($a or $c) and 2 of ($d, $e, $f)))
}
