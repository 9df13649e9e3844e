// Exits with status 3: init must report it and power off with failure.
int main(void)
{
    return 3;
}
