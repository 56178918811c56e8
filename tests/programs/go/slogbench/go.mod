module example.com/slogbench

go 1.21
