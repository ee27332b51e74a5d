// JSP command shells: request parameters passed straight to Runtime.exec or ProcessBuilder.
rule Jsp_Webshell_CmdExec_1
{
    meta:
        severity = "critical"
        description = "JSP webshell running commands from request parameters"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        date = "2026-11-25"
    strings:
        $exec = "Runtime.getRuntime().exec(request.getParameter(" nocase
        $pb = /new\s+ProcessBuilder\s*\([^)]{0,64}request\.getParameter/ nocase
        $jsp = "<%" 
    condition:
        filesize < 1MB and $jsp and ($exec or $pb)
}
