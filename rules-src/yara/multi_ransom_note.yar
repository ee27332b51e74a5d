// Ransom notes left next to encrypted files: the note is often the first thing found.
rule Multi_Ransom_Note_Generic_1
{
    meta:
        severity = "critical"
        description = "Ransom note demanding payment for decryption"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1486/"
        date = "2026-11-25"
    strings:
        $enc1 = "your files have been encrypted" nocase
        $enc2 = "all your files are encrypted" nocase
        $enc3 = "your network has been penetrated" nocase
        $pay1 = "bitcoin" nocase
        $pay2 = "monero" nocase
        $pay3 = /[a-z2-7]{56}\.onion/ nocase
        $dec = "decrypt" nocase
    condition:
        filesize < 200KB and any of ($enc*) and $dec and any of ($pay*)
}
