<?php
// Benign: strips everything but letters from a form field (no /e modifier).
$name = preg_replace("/[^a-z]/i", "", $_POST['name']);
