<?php
// Benign: an installer that checks the PHP configuration and dispatches on a form field.
$problems = array();
if (ini_get("safe_mode")) { $problems[] = "safe_mode is on"; }
if (ini_get("disable_functions")) { $problems[] = "disable_functions: " . ini_get("disable_functions"); }
switch ($_POST['act']) { case "check": echo implode("\n", $problems); break; }
