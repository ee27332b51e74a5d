// Reverse-shell one-liners dropped into crontabs, rc files and web roots.
rule Linux_RevShell_Bash_1
{
    meta:
        severity = "high"
        description = "Bash or netcat reverse shell one-liner"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1059/004/"
        date = "2026-11-25"
    strings:
        $devtcp = /(bash|sh)\s+-i\s+>&\s*\/dev\/tcp\/[0-9a-z.\-]{1,64}\/[0-9]{1,5}/
        $nc = /(nc|ncat|netcat)\s+(-[a-z]+\s+)*-e\s+\/bin\/(ba)?sh/
        $mkfifo = /mkfifo\s+\/tmp\/[a-z0-9_.]{1,16};\s*(nc|cat)\s/
    condition:
        filesize < 1MB and any of them
}

rule Linux_RevShell_Python_1
{
    meta:
        severity = "high"
        description = "Python reverse shell: socket connected to a shell's standard streams"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1059/006/"
        date = "2026-11-25"
    strings:
        $import = "import socket,subprocess,os"
        $dup = "os.dup2(s.fileno(),0)"
        $pty = "pty.spawn(\"/bin/" 
    condition:
        filesize < 1MB and $import and ($dup or $pty)
}
