namespace RamPay.Engine; public static class Placeholder {}
