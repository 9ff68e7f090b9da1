
echo"r-1