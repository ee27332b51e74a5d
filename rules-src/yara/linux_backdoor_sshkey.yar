// Persistence by appending an attacker's key to authorized_keys, as many cloud worms do.
rule Linux_Backdoor_SshKeyInject_1
{
    meta:
        severity = "high"
        description = "Script appending an SSH key to authorized_keys and locking the file"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1098/004/"
        date = "2026-11-25"
    strings:
        $echo = /echo\s+["']?ssh-(rsa|ed25519)\s+AAAA[A-Za-z0-9+\/]{20}/
        $append = ">> ~/.ssh/authorized_keys"
        $append2 = ">>/root/.ssh/authorized_keys"
        $chattr = /chattr\s+\+[ia]+\s+[^\n]{0,32}authorized_keys/
    condition:
        filesize < 1MB and $echo and ($append or $append2 or $chattr)
}
