namespace RamPay.Web.Services;
