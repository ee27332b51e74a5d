<?php
// Test fixture for Php_Webshell_B374k_1: the loader of a b374k 3.x shell with its packed
// payload replaced by a placeholder (it decodes to nothing that runs).
$b374k_pass = "PLACEHOLDER";
$code = gzinflate(base64_decode("AwA="));
