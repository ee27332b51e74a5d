<?php
// Benign: a calculator that reduces the request value to an integer before eval, and
// templates kept base64-encoded in our own configuration, never taken from the request.
$n = intval($_POST['n']);
echo eval('return ' . $n . ' * 2;');
eval(base64_decode($config['template']));
