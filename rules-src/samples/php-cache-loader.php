<?php
// Benign: a page cache that stores compressed HTML base64-encoded in the database.
function cached_page($row) {
    return gzinflate(base64_decode($row['html']));
}
