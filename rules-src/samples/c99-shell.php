<?php
// Test fixture for Php_Webshell_C99_1: fragments of a c99shell clone's header, no shell.
$shell_name = "c99shell v.1.0 pre-release";
if (@ini_get("safe_mode")) { $safemode = true; }
$disabled = @ini_get("disable_functions");
switch ($_POST['act']) { default: echo "PLACEHOLDER"; }
