// PHP one-liner webshells: request data handed to eval/assert, often through base64.
rule Php_Webshell_EvalRequest_1
{
    meta:
        severity = "critical"
        description = "PHP webshell evaluating code taken from an HTTP request"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        date = "2026-11-25"
    strings:
        $eval = /(eval|assert)\s*\(\s*(base64_decode|gzinflate|str_rot13)?\s*\(?\s*\$_(POST|GET|REQUEST|COOKIE)\s*\[/ nocase
        $php = "<?php" nocase
    condition:
        filesize < 2MB and $php and $eval
}

rule Php_Webshell_PregReplaceE_1
{
    meta:
        severity = "high"
        description = "PHP webshell using preg_replace with the /e modifier on request data"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        date = "2026-11-25"
    strings:
        $preg = /preg_replace\s*\(\s*["'][^"']{1,64}\/e["']\s*,\s*\$_(POST|GET|REQUEST)/ nocase
    condition:
        filesize < 2MB and $preg
}
